"""Browser tests of the classroom page: Playwright driving Debian's /usr/bin/chromium."""
