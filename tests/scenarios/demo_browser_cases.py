"""Browser tests of the demo, run by tests/scenarios/test_demo_browser.py inside ``unshare -n``.

Not collected on their own (the file name does not start with ``test_``): Chromium must only
ever run in a private network namespace with nothing but loopback, because it reaches out
to public hosts otherwise (shared/reference/browser-interop.md, pitfall 1). The first
fixture refuses to run anywhere else.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from scenarios.demo.audio_phone import AudioPhone
from scenarios.demo.controller import DemoController
from scenarios.demo.web import DemoServer


CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-gpu",
    "--disable-quic",
    "--autoplay-policy=no-user-gesture-required",
]
# Fast timers, so that a lost signal is noticed in about a second.
FAST = {"heartbeat_interval": 0.5, "heartbeat_timeout": 0.5, "reconnect_grace": 1.0}


@pytest.fixture(autouse=True)
def only_inside_a_private_network_namespace() -> None:
    # /proc/net/dev belongs to this process's namespace (/sys/class/net to sysfs's mount).
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    interfaces = sorted(line.split(":")[0].strip() for line in lines)
    assert interfaces == ["lo"], (
        f"browser tests run only in a loopback-only network namespace, found {interfaces}: "
        "run tests/scenarios/test_demo_browser.py instead"
    )


@pytest.fixture
async def demo() -> AsyncIterator[DemoServer]:
    controller = DemoController(port=0, timers=FAST)
    await controller.start()
    try:
        async with DemoServer(controller, port=0) as server:
            yield server
    finally:
        await controller.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


def card(page: Page, name: str) -> Any:
    return page.locator(f'.card[data-phone="{name}"]')


async def test_the_demo_page_shows_a_call_canceled_by_a_lost_signal(
    demo: DemoServer, browser: Browser
) -> None:
    page = await browser.new_page(viewport={"width": 1400, "height": 900})
    await page.goto(demo.url)
    for name in ("alice", "bob", "carol", "dave"):
        await expect(card(page, name)).to_be_visible()
    await expect(page.locator("#connection")).to_have_text("live")

    alice, bob = card(page, "alice"), card(page, "bob")
    await alice.locator("select.target").select_option("bob")
    await alice.locator('button[data-op="call"]').click()
    await expect(bob.locator(".screen")).to_have_attribute("data-screen", "incoming")
    await expect(alice.locator(".screen")).to_have_attribute("data-screen", "ringing")

    await bob.locator('button[data-op="signal"]').click()  # cut bob's signal
    await expect(bob.locator(".radio")).to_contain_text("NO SIGNAL")
    await alice.locator('button[data-op="hangup"]').click()
    await expect(alice.locator('.log li[data-label="canceled"]')).to_have_count(1)
    # Bob's phone, cut off, gives up ringing after its heartbeat and grace: a missed call.
    await expect(bob.locator('.log li[data-label="missed"]')).to_have_count(1, timeout=15_000)
    await expect(alice.locator(".log li")).to_have_count(1)
    await expect(alice.locator(".log li")).to_contain_text("Canceled call")
    await expect(bob.locator(".log li")).to_contain_text("Missed call")

    ladder = page.locator("#ladder")
    for kind in ("offer", "incoming", "ringing", "hangup"):
        await expect(ladder.locator(f'.row[data-type="{kind}"]').first).to_be_visible()
    await expect(ladder).to_contain_text("signal lost")

    # The same calls as another app labels them.
    await page.locator("#label-profile").select_option("signal")
    await expect(alice.locator(".log li")).to_contain_text("Unanswered voice call")
    await page.locator("#label-profile").select_option("whatsapp")

    screenshot = os.environ.get("VOIP_SANDBOX_SCREENSHOT")
    if screenshot:
        await bob.locator('button[data-op="signal"]').click()  # signal back, for the picture
        await page.wait_for_timeout(1500)
        await page.screenshot(path=screenshot, full_page=True)


async def test_a_scenario_plays_pauses_and_steps_on_the_page(
    demo: DemoServer, browser: Browser
) -> None:
    page = await browser.new_page()
    await page.goto(demo.url)
    await page.locator("#scenario").select_option("01-cancel-while-ringing.yaml")
    await page.locator("#load").click()
    await expect(page.locator("#steps li")).to_have_count(2)
    await page.locator("#step").click()  # alice calls bob, then pause
    await expect(card(page, "bob").locator(".screen")).to_have_attribute("data-screen", "incoming")
    await expect(page.locator("#player-state")).to_have_attribute("data-state", "paused")
    await page.locator("#step").click()  # alice hangs up at once
    await expect(page.locator("#player-state")).to_have_attribute("data-state", "done")
    await expect(card(page, "alice").locator('.log li[data-label="canceled"]')).to_have_count(1)
    await expect(card(page, "bob").locator('.log li[data-label="missed"]')).to_have_count(1)


async def call_stats(page: Page) -> dict[str, Any]:
    return await page.evaluate("window.phone.lastStats || {}")  # type: ignore[no-any-return]


async def wait_audio(page: Page, dave: AudioPhone, call_id: str) -> None:
    """Waits until packets flow both ways: in the browser's getStats and at aiortc."""
    async with asyncio.timeout(15):
        await dave.wait_for_frames(50, call_id)  # about a second of sound decoded by aiortc
    await page.wait_for_function(
        "(s => s.packetsReceived > 50 && s.packetsSent > 50 && s.totalAudioEnergy > 0)"
        "(window.phone.lastStats || {})",
        timeout=15_000,
    )


async def test_the_browser_phone_and_an_aiortc_phone_call_each_other_with_audio(
    demo: DemoServer, browser: Browser
) -> None:
    page = await browser.new_page()
    await page.goto(demo.url + "phone?name=erin")
    await page.wait_for_function("window.phone.registered === true")
    controller = demo.controller
    assert controller.world is not None
    dave = controller.world.phones["dave"]
    assert isinstance(dave, AudioPhone)

    # 1. The browser calls the aiortc phone, which answers; the browser hangs up.
    await page.fill("#to", "dave")
    dave_rings = controller.world.stream.wait_for(
        lambda e: (
            e.get("event") == "screen" and e.get("who") == "dave" and e.get("screen") == "incoming"
        )
    )  # armed before the click, so the ring cannot slip by
    await page.click("#call")
    async with asyncio.timeout(10):
        await dave_rings
    first = await dave.answer()
    await expect(page.locator("#screen")).to_have_attribute("data-screen", "in_call")
    await wait_audio(page, dave, first)
    await page.click("#hangup")
    await expect(page.locator('#log li[data-label="outgoing"]')).to_have_count(1)

    # 2. The aiortc phone calls the browser, which answers; the aiortc phone hangs up.
    await expect(page.locator("#screen")).to_have_attribute("data-screen", "ended")
    second = await dave.call("erin")
    await expect(page.locator("#screen")).to_have_attribute("data-screen", "incoming")
    await page.click("#answer")
    await expect(page.locator("#screen")).to_have_attribute("data-screen", "in_call")
    await wait_audio(page, dave, second)
    assert (await call_stats(page))["call_id"] == second
    await dave.hang_up()
    await expect(page.locator('#log li[data-label="incoming"]')).to_have_count(1)
    await page.wait_for_function("window.phone.card.call_id === null")

    # Labels on both ends, from each end's own transitions, by the same observers.
    state = controller.state()
    logs = {card["name"]: card["log"] for card in state["phones"]}
    assert [(e["key"], e["with"], e["direction"]) for e in logs["erin"]] == [
        ("outgoing", "dave", "outgoing"),
        ("incoming", "dave", "incoming"),
    ]
    assert [(e["key"], e["with"]) for e in logs["dave"]] == [
        ("incoming", "erin"),
        ("outgoing", "erin"),
    ]
    assert all(e["duration"] is not None and e["duration"] > 0 for e in logs["erin"] + logs["dave"])
    assert not (await page.evaluate("window.phone.errors"))


def test_screenshot_path_is_in_docs_when_asked() -> None:
    screenshot = os.environ.get("VOIP_SANDBOX_SCREENSHOT")
    if screenshot:
        assert Path(screenshot).is_file()
