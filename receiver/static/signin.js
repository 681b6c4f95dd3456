// The sign-in form: carry the page the user was going to, and say why they are here.
(function () {
  "use strict";
  var MESSAGES = {
    "wrong-key": "That key is not valid.",
    expired: "Your session has expired. Sign in again.",
    invalid: "Your session is no longer valid. Sign in again.",
  };
  var params = new URLSearchParams(window.location.search);
  var next = params.get("next");
  // The server checks it again; this only keeps the form from offering a foreign target.
  if (next && next.indexOf("/dashboard") === 0) {
    document.getElementById("next").value = next;
  }
  var text = MESSAGES[params.get("error")] || (params.has("signed_out") ? "You are signed out." : "");
  if (text) {
    var message = document.getElementById("message");
    message.textContent = text;
    message.dataset.kind = params.has("error") ? "error" : "info";
    message.hidden = false;
  }
})();
