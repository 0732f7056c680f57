"""
The console in a real browser: Debian's chromium, headless, driven by
Selenium through Debian's chromedriver (both in .ci/debian-packages; Selenium
from requirements-dev.txt, which make test installs), against the real
server on 127.0.0.1: logging in, a forged form refused, a live transcript
appearing while smtplib talks, and an HTML mail whose script and remote
image never run or load.

A second HTTP listener on 127.0.0.1 (the "canary") records every request it
gets: the hostile mail's script and images point at it, and it also serves
the forging page (another port of the same host is the same site, so the
browser does send the console's SameSite=Strict cookie with its form: only
the CSRF token refuses it). Before trusting the canary's silence, a test
opens the same hostile HTML outside the console and sees the canary hit.

Screenshots of each step go under this test's _trial_temp directory (their
paths are in the log, test.log).
"""

import os
import shutil
import smtplib
import time

from twisted.internet import defer, reactor, task, threads
from twisted.logger import Logger
from twisted.trial import unittest
from twisted.web import resource, server

from tests.helpers import E2EMixin, listenerTOML

log = Logger()


def _find(*names):
    for name in names:
        found = shutil.which(name) or (name if os.path.isabs(name) and os.access(name, os.X_OK)
                                       else None)
        if found:
            return found
    return None


CHROMIUM = _find("chromium", "chromium-browser")
CHROMEDRIVER = _find("chromedriver", "/usr/lib/chromium/chromedriver")
SKIP = None
if CHROMIUM is None or CHROMEDRIVER is None:
    SKIP = ("Debian's chromium and chromium-driver are not installed "
            "(they are in .ci/debian-packages: make deps as root installs them)")
else:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

CONSOLE = (listenerTOML("smtp", name="smtp")
           + listenerTOML("submission", name="submission", allow_plaintext_auth=True) + """
[web]
endpoint = "tcp:0:interface=127.0.0.1"
""")

HOSTILE_HTML = """\
<html><head><title>hostile</title>
<style>p.greeting {{ color: rgb(0, 128, 0); }}</style></head>
<body>
<p class="greeting" id="greeting">Hello from an HTML mail</p>
<script>
document.title = "script ran";
new Image().src = "{canary}/script-image";
fetch("{canary}/script-fetch");
</script>
<img src="{canary}/remote-image.png" alt="remote">
<img src="x" onerror="new Image().src='{canary}/onerror'" alt="broken">
<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" alt="inline">
<form action="{canary}/form" method="post"><button id="go">go</button></form>
</body></html>
"""


class Canary(resource.Resource):
    """Records the path of every request; serves the pages it is given."""

    isLeaf = True

    def __init__(self):
        resource.Resource.__init__(self)
        self.hits = []
        self.pages = {}

    def render(self, request):
        path = request.path.decode("ascii", "replace")
        page = self.pages.get(path)
        if page is not None:
            request.setHeader(b"content-type", b"text/html; charset=utf-8")
            return page.encode("utf-8")
        self.hits.append(path)
        request.setHeader(b"content-type", b"image/gif")
        return b""


class BrowserTests(E2EMixin, unittest.TestCase):
    """
    The console seen through headless chromium.
    """

    skip = SKIP
    listeners = CONSOLE
    timeout = 60

    def setUp(self):
        E2EMixin.setUp(self)
        self.consolePort = self.server.getServiceNamed("web").port.getHost().port
        self.console = "http://127.0.0.1:%d" % (self.consolePort,)
        self.canary = Canary()
        site = server.Site(self.canary)
        site.noisy = False
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.canaryURL = "http://127.0.0.1:%d" % (port.getHost().port,)
        self.shots = os.path.abspath(self.mktemp())
        os.makedirs(self.shots)
        return threads.deferToThread(self.startBrowser)

    def startBrowser(self):
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900",
                         "--no-first-run", "--disable-extensions"):
            options.add_argument(argument)
        self.driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        self.driver.set_page_load_timeout(20)
        self.addCleanup(threads.deferToThread, self.driver.quit)

    def inBrowser(self, f, *args):
        """Run C{f(driver, *args)} in a thread (Selenium blocks; the server runs here)."""
        return threads.deferToThread(f, self.driver, *args)

    def screenshot(self, driver, name):
        path = os.path.join(self.shots, name + ".png")
        driver.save_screenshot(path)
        log.info("browser screenshot: {path}", path=path)
        return path

    def logIn(self, driver, address="demo@lab.test", password="demo", next="/"):
        driver.get(self.console + "/login?next=" + next)
        driver.find_element(By.ID, "address").send_keys(address)
        driver.find_element(By.ID, "password").send_keys(password)
        driver.find_element(By.CSS_SELECTOR, "form.stacked button[type=submit]").click()
        WebDriverWait(driver, 10).until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "form.logout")))

    def waitFor(self, condition, seconds=10):
        """Poll C{condition()} in the reactor until true (or fail after C{seconds})."""
        deadline = reactor.seconds() + seconds

        def check():
            if condition():
                loop.stop()
            elif reactor.seconds() > deadline:
                loop.stop()
                raise AssertionError("still not true after %s s" % (seconds,))
        loop = task.LoopingCall(check)
        return loop.start(0.05)

    # -- the tests -----------------------------------------------------------

    @defer.inlineCallbacks
    def test_loginAndFolders(self):
        """A mail account logs in through the form, sees itself signed in, then its folders and mail."""
        yield self.mailServer.deliver("demo@lab.test", b"Subject: first lab\r\n\r\nhello\r\n")

        def browse(driver):
            self.logIn(driver)
            home = driver.find_element(By.TAG_NAME, "main").text
            self.screenshot(driver, "login")
            driver.find_element(By.LINK_TEXT, "Mail").click()
            driver.find_element(By.LINK_TEXT, "INBOX").click()
            driver.find_element(By.LINK_TEXT, "first lab").click()
            message = driver.find_element(By.TAG_NAME, "main").text
            self.screenshot(driver, "message")
            return home, message

        home, message = yield self.inBrowser(browse)
        self.assertIn("Signed in as demo@lab.test", home)
        self.assertIn("hello", message)
        self.assertIn("Flags (none)", message)  # reading did not make it \Seen

    @defer.inlineCallbacks
    def test_forgedPostRefused(self):
        """A form another site makes the signed-in browser post is refused; no mail is sent."""
        self.canary.pages["/forge"] = (
            '<form id="f" method="post" action="%s/mail/send">'
            '<input name="to" value="demo@lab.test"><input name="subject" value="forged">'
            '<input name="body" value="x"><input name="csrf" value="guessed"></form>'
            '<script>document.getElementById("f").submit()</script>' % (self.console,))

        def browse(driver):
            self.logIn(driver)
            driver.get(self.canaryURL + "/forge")
            WebDriverWait(driver, 10).until(lambda d: d.current_url.startswith(self.console))
            WebDriverWait(driver, 10).until(
                expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "p.error")))
            self.screenshot(driver, "csrf-refused")
            return driver.find_element(By.CSS_SELECTOR, "p.error").text

        text = yield self.inBrowser(browse)
        self.assertIn("did not come from this console", text)
        mailbox = yield self.server.store.account("demo@lab.test").openMailbox("INBOX")
        yield mailbox.sync(claimRecent=False)
        self.assertEqual(mailbox.messages(), [])

    @defer.inlineCallbacks
    def test_liveTranscript(self):
        """Lines of an SMTP session appear in the open transcripts page as smtplib talks."""
        hub = self.server.web.transcripts

        def openPage(driver):
            self.logIn(driver, next="/transcripts/")
            driver.get(self.console + "/transcripts/")

        yield self.inBrowser(openPage)
        yield self.waitFor(lambda: hub.watchers >= 1)

        def talk():
            with smtplib.SMTP("127.0.0.1", self.port("submission"), timeout=10) as client:
                client.ehlo("student-laptop")
                client.login("demo@lab.test", "demo")
                client.sendmail("demo@lab.test", ["demo@lab.test"],
                                b"Subject: live\r\n\r\nwatch me\r\n")
        yield threads.deferToThread(talk)

        def watch(driver):
            live = driver.find_element(By.ID, "live")
            WebDriverWait(driver, 10).until(
                lambda d: "QUIT" in live.text and "watch me" in live.text)
            self.screenshot(driver, "live-transcript")
            return live.text

        text = yield self.inBrowser(watch)
        for expected in ("C: ehlo student-laptop", "# logged in as demo@lab.test",
                         "C: mail FROM:<demo@lab.test>", "C: rcpt TO:<demo@lab.test>",
                         "C: QUIT", "S: 221 "):
            self.assertIn(expected, text)
        # smtplib logs in with CRAM-MD5 (offered: demo is {PLAIN}): its answer is hidden
        lines = text.splitlines()
        auth = next(i for i, line in enumerate(lines) if "C: AUTH " in line)
        self.assertTrue(lines[auth + 2].endswith("C: ***"), lines[auth:auth + 3])

    @defer.inlineCallbacks
    def test_hostileHTMLMail(self):
        """An HTML mail's script does not run and its remote image does not load; its text shows."""
        html = HOSTILE_HTML.format(canary=self.canaryURL)
        # First the canary is shown to work: the same HTML opened outside the
        # console runs its script and loads the remote image.
        self.canary.pages["/control"] = html

        def control(driver):
            driver.get(self.canaryURL + "/control")
            WebDriverWait(driver, 10).until(lambda d: d.title == "script ran")
        yield self.inBrowser(control)
        yield self.waitFor(lambda: {"/script-image", "/remote-image.png"} <= set(self.canary.hits))
        self.canary.hits[:] = []

        message = ("From: someone@example.test\r\nTo: demo@lab.test\r\nSubject: hostile\r\n"
                   "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
                   + html.replace("\n", "\r\n"))
        yield self.mailServer.deliver("demo@lab.test", message.encode("utf-8"))
        mailbox = yield self.server.store.account("demo@lab.test").openMailbox("INBOX")
        yield mailbox.sync(claimRecent=False)
        uid = mailbox.messages()[-1].uid

        def view(driver):
            self.logIn(driver)
            driver.get(self.console + "/mail/message?mailbox=INBOX&uid=%d" % (uid,))
            frame = driver.find_element(By.CSS_SELECTOR, "iframe.html-part")
            sandbox = frame.get_attribute("sandbox")
            driver.switch_to.frame(frame)
            greeting = WebDriverWait(driver, 10).until(
                expected_conditions.presence_of_element_located((By.ID, "greeting")))
            shown, color = greeting.text, greeting.value_of_css_property("color")
            driver.switch_to.default_content()
            time.sleep(1)  # time for any request the page could make
            self.screenshot(driver, "html-mail")
            consoleTitle = driver.title
            # the part opened on its own is sandboxed by its CSP too
            driver.get(self.console + "/mail/part?mailbox=INBOX&uid=%d&section=1" % (uid,))
            WebDriverWait(driver, 10).until(
                expected_conditions.presence_of_element_located((By.ID, "greeting")))
            time.sleep(1)
            self.screenshot(driver, "html-part-alone")
            return sandbox, shown, color, consoleTitle, driver.title

        sandbox, shown, color, consoleTitle, aloneTitle = yield self.inBrowser(view)
        self.assertEqual(sandbox, "")
        self.assertEqual(shown, "Hello from an HTML mail")
        self.assertIn(color, ("rgb(0, 128, 0)", "rgba(0, 128, 0, 1)"))  # inline styles apply
        self.assertEqual(consoleTitle, "hostile · mailstack")
        self.assertEqual(aloneTitle, "hostile")
        self.assertEqual(self.canary.hits, [])
