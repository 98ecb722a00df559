"""``wsconsole web``: the Textual console served to browsers, behind a login.

- :mod:`.settings`: what it is configured with and the rules checked before binding;
- :mod:`.sessions`: logins by cookie, and the rate of login attempts (pure);
- :mod:`.audit`: the web front's audit lines;
- :mod:`.server`: the aiohttp application around textual-serve (the ``web`` extra);
- :mod:`.command`: the command line.

Importing this package loads neither aiohttp nor textual-serve: only
:mod:`.server` does, when the command runs.
"""
