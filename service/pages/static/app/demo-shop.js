/* The demo shop's cart: the product buttons and the widget's add-to-cart callback both add here. */
(function () {
  "use strict";
  var cart = document.getElementById("cart");
  var target = document.getElementById("crm-widget");
  function items() {
    return Array.prototype.map.call(cart.querySelectorAll("li[data-item-id]"), function (li) {
      return li.getAttribute("data-item-id");
    });
  }
  function add(id, name) {
    if (items().indexOf(id) < 0) {
      var li = document.createElement("li");
      li.setAttribute("data-item-id", id);
      li.textContent = name || id;
      cart.appendChild(li);
    }
    target.setAttribute("data-cart-items", items().join(","));
    if (window.CRMWidget) { window.CRMWidget.render({items: items()}); }
  }
  document.querySelectorAll(".add-product").forEach(function (button) {
    button.addEventListener("click", function () { add(button.getAttribute("data-item-id"), button.getAttribute("data-name")); });
  });
  if (window.CRMWidget) {
    window.CRMWidget.onAddToCart(function (item) {
      (item.items || [item.item_id]).forEach(function (id) { add(id, id === item.item_id ? item.name : id); });
    });
  }
})();
