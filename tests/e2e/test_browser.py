"""The dashboard and the protected previews in a real headless Chromium
(Debian's chromium and chromedriver, driven over WebDriver): a reviewer
signs in with the token, watches a preview appear while it builds and turn
ready without reloading, opens its log, extends its lease, redeploys a
failed preview; a share link opens a protected preview in a fresh profile
and stops once revoked. Screenshots of the dashboard and of each page a
reviewer meets go to $PREVUE_ARTEFACTS_DIR (the build's artefacts/)."""

import json
import os
import unittest

import webdriver
from prevue_e2e import Daemon, PrevueTestCase, commit_all, git, make_echo_repo, make_template_repo, primary_host, set_banner
from test_dashboard import fail_build_until
from test_holding_pages import gate_build

ARTEFACTS = os.environ.get("PREVUE_ARTEFACTS_DIR")
HAVE_BROWSER = bool(webdriver.CHROMIUM and webdriver.CHROMEDRIVER)


# CI installs the browser (scripts/setup-browser.sh): there a missing one fails.
@unittest.skipUnless(HAVE_BROWSER or os.environ.get("CI"), "chromium and chromium-driver are not installed (scripts/setup-browser.sh)")
class BrowserCase(PrevueTestCase):
    def setUp(self):
        super().setUp()
        self.artefacts = ARTEFACTS or os.path.join(self.scratch, "artefacts")
        self.browsers = []

    def tearDown(self):
        for b in self.browsers:
            b.quit()
        super().tearDown()

    def browser(self, name):
        b = webdriver.Browser(self.scratch, name)
        self.browsers.append(b)
        return b

    def shot(self, browser, name):
        browser.screenshot(os.path.join(self.artefacts, name + ".png"))


class DashboardInChromium(BrowserCase):
    def setUp(self):
        super().setUp()
        self.repo = make_template_repo(self.scratch)
        self.gate = os.path.join(self.scratch, "let-the-build-finish")
        self.flag = os.path.join(self.scratch, "the-build-may-pass")
        self.daemon = Daemon(self.scratch, [self.repo]).start()  # stopped by tearDown

    def tearDown(self):
        open(self.gate, "w").close()  # a build still waiting ends
        super().tearDown()

    def open_pr(self, branch, banner, prepare):
        git(self.repo, "checkout", "-q", "-b", branch, "main")
        set_banner(self.repo, banner)
        prepare()
        sha = commit_all(self.repo, banner)
        git(self.repo, "checkout", "-q", "main")
        self.daemon.api_call("POST", "/api/v1/repositories/poll", {})
        return sha

    def link(self, env):
        """A preview's link, also before it has one (building, failed): the proxy knows its name."""
        return f"http://{env['slug']}.prevue.localhost:{self.daemon.proxy_port}/"

    def state_in_list(self, b, slug):
        return b.text(f'tr[data-slug="{slug}"] .state')

    def test_sign_in_watch_a_build_open_its_log_extend_and_redeploy(self):
        b = self.browser("reviewer")
        b.open(self.daemon.api + "/")
        b.wait_for(lambda: b.url().endswith("/login"), "the sign-in page")
        self.shot(b, "dashboard-sign-in")
        b.type("#token", "wrong")
        b.click("#sign-in button")
        b.wait_for(lambda: "Wrong token" in (b.text(".error") or ""), "the wrong token refused")
        b.type("#token", self.daemon.token)
        b.click("#sign-in button")
        b.wait_for(lambda: b.find("#repositories") and "No previews yet" in b.text("#repositories"), "the empty dashboard")
        self.assertEqual(b.text("#live"), "live")  # subscribed to the daemon's event stream
        self.assertFalse(any(c["name"] == "prevue_session" and not c["httpOnly"] for c in b.cookies()))

        # A pull request whose build waits: the reviewer opens its link and sees the building page.
        self.open_pr("feature/slow", "slow branch", lambda: gate_build(self.repo, self.gate))
        building = self.daemon.wait_env(1, "provisioning", timeout=60)
        b.open(self.link(building))
        b.wait_for(lambda: "being built" in b.source(), "the building page")
        self.shot(b, "holding-building")

        # The dashboard shows it building; released, it turns ready on the page without a reload.
        b.open(self.daemon.api + "/")
        b.wait_for(lambda: self.state_in_list(b, building["slug"]) == "provisioning", "the building preview in the list")
        b.script("window.notReloaded = true;")
        self.shot(b, "dashboard-building")
        open(self.gate, "w").close()
        b.wait_for(lambda: self.state_in_list(b, building["slug"]) == "ready", "the preview ready on the page", timeout=90)
        self.assertTrue(b.script("return window.notReloaded === true;"))
        self.shot(b, "dashboard-ready")

        # Its log, step by step.
        b.click(f'tr[data-slug="{building["slug"]}"] a')
        b.wait_for(lambda: "ready — succeeded" in (b.text("#run") or ""), "the run's steps")
        self.assertIn("feature/slow", b.text("#detail-facts"))
        self.assertNotIn(self.daemon.state_dir, b.source())  # no server paths (the repository is named as configured)
        self.shot(b, "dashboard-preview")

        # Extend its lease by 72h: the page shows the new end, the API agrees.
        before = self.daemon.environment(building["slug"])["lease"]["expires_at_ms"]
        lease_before = b.text("#detail-facts")
        b.script("document.getElementById('extend-by').value = '72h';")
        b.click("#extend")
        b.wait_for(lambda: "Lease extended by 72h" in (b.text("#notice") or ""), "the extension confirmed")
        after = self.daemon.environment(building["slug"])["lease"]["expires_at_ms"]
        self.assertEqual(after - before, 72 * 3600 * 1000)
        b.wait_for(lambda: b.text("#detail-facts") != lease_before, "the new lease shown")

        # A failed preview: its page says so; the dashboard redeploys it without a push.
        self.open_pr("feature/flaky", "flaky branch", lambda: fail_build_until(self.repo, self.flag))
        failed = self.daemon.wait_env(2, "failed", timeout=90)
        b.open(self.link(failed))
        b.wait_for(lambda: "failed" in b.source(), "the failed page")
        self.assertNotIn(self.scratch, b.source())  # shown to anyone who has the link: no path at all
        self.shot(b, "holding-failed")
        b.click("a[href$='/#/p/" + failed["slug"] + "']")  # the failed page links to the run's log
        b.wait_for(lambda: b.url() == self.daemon.api + "/#/p/" + failed["slug"], "the dashboard's page of the preview")
        b.wait_for(lambda: b.find("#redeploy"), "the redeploy button")
        self.assertIn("the flag is missing", b.text("#run"))  # the failed step is open
        open(self.flag, "w").close()
        b.click("#redeploy")
        b.wait_for(lambda: "ready" in (b.text("#detail-title") or ""), "the redeployed preview ready", timeout=90)
        self.assertIsNone(b.find("#redeploy"))
        self.shot(b, "dashboard-redeployed")


class ShareLinkInChromium(BrowserCase):
    def test_a_share_link_opens_a_protected_preview_in_a_fresh_profile_until_revoked(self):
        repo = make_echo_repo(self.scratch)
        daemon = self.daemon = Daemon(self.scratch, [repo], extra={"access": {"mode": "link"}}).start()
        env = daemon.wait_env(1, "ready", timeout=120, fail_fast=True)
        preview = env["url"]

        stranger = self.browser("stranger")
        stranger.open(preview)
        stranger.wait_for(lambda: "Private preview" in stranger.source(), "the private page")
        self.shot(stranger, "protected-refused")

        # The operator makes the link on the preview's dashboard page.
        operator = self.browser("operator")
        operator.open(daemon.api + "/login")
        operator.type("#token", daemon.token)
        operator.click("#sign-in button")
        operator.wait_for(lambda: operator.find("#repositories"), "the dashboard")
        operator.open(f"{daemon.api}/#/p/{env['slug']}")
        operator.wait_for(lambda: operator.find("#make-link"), "the share link form")
        operator.type("#link-note", "for the reviewer")
        operator.click("#make-link")
        operator.wait_for(lambda: operator.find("#made-link"), "the new share link")
        url = operator.script("return document.getElementById('made-link').value;")
        self.assertTrue(url.startswith(preview.rstrip("/") + "/__prevue/link?t="), url)
        operator.wait_for(lambda: "for the reviewer" in (operator.text("#links") or ""), "the link in the list")
        self.shot(operator, "dashboard-share-link")
        links = daemon.api_call("GET", f"/api/v1/environments/{env['slug']}/links")[1]
        self.assertEqual([(l["note"], l["created_by"]) for l in links], [("for the reviewer", "api token (dashboard)")])
        link = {"url": url, "id": links[0]["id"]}
        reviewer = self.browser("reviewer-fresh-profile")
        reviewer.open(link["url"])
        reviewer.wait_for(lambda: '"path"' in reviewer.source(), "the app's answer (the request it saw)")
        seen = reviewer.source()
        self.assertNotIn("__prevue_access", seen)  # the app never sees prevue's cookie
        self.assertNotIn("t=", reviewer.url())  # the token left the address bar
        self.assertTrue(any(c["name"] == "__prevue_access" and c["httpOnly"] for c in reviewer.cookies()))
        self.shot(reviewer, "protected-opened")

        # Revoked on the dashboard: the link and the cookie it gave stop working.
        operator.click(f"#revoke-{link['id']}")
        operator.wait_for(lambda: "No share link that works" in (operator.text("#links") or ""), "the link gone from the list")
        reviewer.wait_for(lambda: (reviewer.open(preview), "Private preview" in reviewer.source())[1], "the revoked link's cookie refused")
        latecomer = self.browser("latecomer")
        latecomer.open(link["url"])
        latecomer.wait_for(lambda: "Link not valid" in latecomer.source(), "the revoked link refused")
        self.shot(latecomer, "protected-link-revoked")
        self.assertEqual(primary_host(env), preview.split("//", 1)[1].split(":", 1)[0])


class LoginPreviewInChromium(BrowserCase):
    def test_a_preview_is_private_by_default_and_opens_after_signing_in(self):
        repo = make_echo_repo(self.scratch)
        daemon = self.daemon = Daemon(self.scratch, [repo])
        with open(daemon.config_path, encoding="utf-8") as f:
            config = json.load(f)
        del config["access"]  # the default of a config with a token: `login`
        with open(daemon.config_path, "w", encoding="utf-8") as f:
            json.dump(config, f)
        daemon.start()
        env = daemon.wait_env(1, "ready", timeout=120, fail_fast=True)
        wanted = env["url"] + "some/page?x=1"

        # Signed out: the preview sends the browser to the dashboard's sign-in.
        b = self.browser("signed-out")
        b.open(wanted)
        b.wait_for(lambda: b.url().startswith(daemon.api + "/login"), "the dashboard's sign-in")
        self.assertNotIn('"path"', b.source())  # the app answered nothing
        self.shot(b, "login-preview-sign-in")

        # Signed in: back at the page asked for, served by the app, which never sees prevue's cookies.
        b.type("#token", daemon.token)
        b.click("#sign-in button")
        b.wait_for(lambda: '"path"' in b.source(), "the app's answer")
        self.assertEqual(b.url(), wanted)
        seen = b.source()
        self.assertIn('"/some/page?x=1"', seen)
        self.assertNotIn("__prevue_access", seen)
        self.assertNotIn("prevue_session", seen)
        self.shot(b, "login-preview-opened")

        # Another browser, never signed in, still gets the sign-in page.
        other = self.browser("other")
        other.open(wanted)
        other.wait_for(lambda: other.url().startswith(daemon.api + "/login"), "the sign-in for a stranger")


if __name__ == "__main__":
    unittest.main()
