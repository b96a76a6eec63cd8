"""The cart widget in headless Chromium: on the demo shop, and on shops of other origins."""
from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from support.browser import PUBLISHABLE_KEY, ShopSite, stored_reactions
from support.processes import wait_until
from support.service_process import Service


def wait_state(browser, state: str, timeout: float = 15.0) -> None:
    WebDriverWait(browser, timeout).until(
        lambda d: d.find_element(By.ID, "crm-widget").get_attribute("data-crm-state") == state)


def test_demo_shop_shows_the_widget_for_a_real_cart_and_records_a_click(browser, live_service: Service) -> None:
    browser.get(f"{live_service.base}/app/demo-shop")
    wait_state(browser, "ready")
    cards = browser.find_elements(By.CSS_SELECTOR, "#crm-widget .crm-item")
    assert cards and cards[0].is_displayed()
    assert "Complete your basket" in browser.find_element(By.ID, "crm-widget").text
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.CSS_SELECTOR, ".crm-widget")
                                     .get_attribute("data-shown") == "true")
    rec_id = browser.find_element(By.CSS_SELECTOR, ".crm-widget").get_attribute("data-recommendation-id")
    item = cards[0].get_attribute("data-item-id")
    cards[0].find_element(By.CSS_SELECTOR, "button.crm-add").click()
    for reaction in ("shown", "clicked"):
        assert wait_until(lambda r=reaction: len(_reactions_of(live_service, rec_id, item, r)), timeout=10) == 1
    # the add-to-cart callback put the item in the shop's cart
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, f'#cart li[data-item-id="{item}"]'))
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"], browser.get_log("browser")


def test_widget_works_cross_origin_with_a_publishable_key(browser, live_service: Service) -> None:
    with ShopSite(live_service.base, port=live_service.allowed_port) as shop:  # type: ignore[attr-defined]
        browser.get(shop.origin + "/")
        wait_state(browser, "ready")
        card = browser.find_elements(By.CSS_SELECTOR, "#crm-widget .crm-item")[0]
        rec_id = browser.find_element(By.CSS_SELECTOR, ".crm-widget").get_attribute("data-recommendation-id")
        item = card.get_attribute("data-item-id")
        card.find_element(By.CSS_SELECTOR, "button.crm-add").send_keys("\n")  # the keyboard, not the mouse
        found = wait_until(lambda: len(_reactions_of(live_service, rec_id, item, "clicked")) or None, timeout=10)
        assert found == 1


def test_widget_is_refused_from_an_origin_not_allowed_and_the_page_stays_whole(browser, live_service: Service) -> None:
    with ShopSite(live_service.base) as shop:
        browser.get(shop.origin + "/")
        wait_state(browser, "failed")
        target = browser.find_element(By.ID, "crm-widget")
        assert not target.is_displayed() and target.text == ""
        assert browser.find_element(By.ID, "shop-title").is_displayed()
        # what the browser itself says about a direct call from this origin: blocked
        outcome = browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch(arguments[0] + '/v1/cart/suggestions', {method: 'POST', headers: {'Content-Type': "
            "'application/json', 'X-API-Key': arguments[1]}, body: '{\"items\": [\"coffee\"]}'})"
            ".then(r => done('answered ' + r.status), e => done('blocked ' + e.name));",
            live_service.base, PUBLISHABLE_KEY)
        assert outcome.startswith("blocked"), outcome


def _reactions_of(service: Service, rec_id: str, item: str, reaction: str):
    df = stored_reactions(service.events_url)  # type: ignore[attr-defined]
    return df[(df["recommendation_id"] == rec_id) & (df["item_id"] == item) & (df["reaction"] == reaction)]
