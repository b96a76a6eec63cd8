"""The CRM screens in headless Chromium: sign in, find a client, reject a suggestion on the card."""
from __future__ import annotations

import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait
from support.browser import stored_reactions
from support.processes import wait_until
from support.service_process import ADMIN_KEY, READ, READ_KEY, Service

from eventstore import EventStore


def test_search_a_client_and_reject_a_suggestion_on_the_card(browser, live_service: Service) -> None:
    browser.get(f"{live_service.base}/app/clients")
    WebDriverWait(browser, 10).until(lambda d: "/app/sign-in" in d.current_url)
    browser.find_element(By.ID, "name").send_keys("Browser Tester")
    browser.find_element(By.ID, "key").send_keys(READ_KEY)
    browser.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()
    WebDriverWait(browser, 10).until(lambda d: d.current_url.endswith("/app/clients"))
    browser.find_element(By.ID, "q").send_keys("c1")
    browser.find_element(By.CSS_SELECTOR, "form[role=search] button").click()
    WebDriverWait(browser, 10).until(lambda d: d.current_url.endswith("/app/clients/c1"))
    assert "Signed in as Browser Tester" in browser.find_element(By.TAG_NAME, "header").text
    first = browser.find_elements(By.CSS_SELECTOR, "li.suggestion")[0]
    item = first.get_attribute("data-item-id")
    rec_id = first.find_element(By.NAME, "recommendation_id").get_attribute("value")
    Select(first.find_element(By.CSS_SELECTOR, "form.reject select")).select_by_value("already_have")
    first.find_element(By.CSS_SELECTOR, "button.reject-button").click()
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "done"))
    assert not browser.find_elements(By.CSS_SELECTOR, f'li.suggestion[data-item-id="{item}"]')

    def stored():
        df = stored_reactions(live_service.events_url)  # type: ignore[attr-defined]
        return df[(df["recommendation_id"] == rec_id) & (df["item_id"] == item) & (df["reaction"] == "rejected")]

    assert wait_until(lambda: len(stored()) or None, timeout=10) == 1
    row = stored()
    assert row.iloc[0]["reason"] == "already_have" and row.iloc[0]["channel"] == "crm"
    with EventStore(live_service.events_url) as events:  # type: ignore[attr-defined]
        assert events.reaction_actor("default", rec_id, item, "rejected").startswith("Browser Tester (key:")


def sign_in_as(browser, base: str, key: str, name: str) -> None:
    browser.delete_all_cookies()
    browser.get(f"{base}/app/sign-in?next=/app/effect")
    browser.find_element(By.ID, "name").send_keys(name)
    browser.find_element(By.ID, "key").send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()


def test_dashboard_renders_a_report_for_an_admin(browser, live_service: Service) -> None:
    for client_id in ("c1", "c2", "c3"):  # answers to report on (exposures drained into the store)
        requests.get(f"{live_service.base}/v1/clients/{client_id}/suggestions", headers=READ, timeout=5)
    sign_in_as(browser, live_service.base, ADMIN_KEY, "Admin")
    WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.ID, "variants"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.chart")) == 3
    assert "Incremental revenue per client" in browser.find_element(By.TAG_NAME, "main").text
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def test_interactive_docs_run_offline_under_their_policy(browser, live_service: Service) -> None:
    browser.get(f"{live_service.base}/docs/interactive")
    WebDriverWait(browser, 20).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= 5)
    assert "/v1/cart/suggestions" in browser.find_element(By.ID, "swagger-ui").text
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"], browser.get_log("browser")
