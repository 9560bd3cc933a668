// casebridge admin UI: small improvements over plain forms (everything works without this).
// Copy buttons: <button data-copy="ID"> copies the value of the element with that id.
document.addEventListener("click", function (ev) {
  var btn = ev.target.closest("[data-copy]");
  if (!btn) return;
  var el = document.getElementById(btn.getAttribute("data-copy"));
  if (!el) return;
  var text = el.value !== undefined ? el.value : el.textContent;
  var done = function () {
    var old = btn.textContent;
    btn.textContent = "Copied";
    setTimeout(function () { btn.textContent = old; }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, function () { el.select(); document.execCommand("copy"); done(); });
  } else {
    el.select();
    document.execCommand("copy");
    done();
  }
});
// Forms marked data-confirm ask before they are sent.
document.addEventListener("submit", function (ev) {
  var msg = ev.target.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) ev.preventDefault();
});
// htmx requests carry the page's CSRF token as a header.
document.addEventListener("htmx:configRequest", function (ev) {
  var token = document.querySelector("input[name=csrf]");
  if (token) ev.detail.headers["X-CSRF-Token"] = token.value;
});
