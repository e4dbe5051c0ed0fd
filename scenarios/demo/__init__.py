"""The teaching demo: ``voip-sandbox demo`` serves a page that shows phones calling.

- :mod:`~scenarios.demo.controller`: the live world (server and phones, real time) and the
  page's view of it, and the commands the page sends.
- :mod:`~scenarios.demo.playback`: a library scenario played in real time, with play,
  pause, step and speed.
- :mod:`~scenarios.demo.browser_phone`: the Python half of the browser phone.
- :mod:`~scenarios.demo.audio_phone`: a simulated phone with real aiortc audio.
- :mod:`~scenarios.demo.web`: the HTTP and websocket front server; ``static/`` holds the
  dependency-free page and browser phone.
- :mod:`~scenarios.demo.app`: the ``voip-sandbox demo`` command's body.
"""
