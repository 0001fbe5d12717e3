// Candor's pages work without this file. It adds two niceties:
// - live updates: when the server reports new data, the parts of the page marked data-live
//   are fetched again and swapped in, so what the partner shares appears without a reload;
// - a passphrase strength hint while typing.
"use strict";

(function () {
  function refresh() {
    // A page waiting for something (the partner joining) reloads; the server sends it on.
    if (document.querySelector("[data-reload]")) {
      window.location.reload();
      return Promise.resolve();
    }
    return fetch(window.location.href, { credentials: "same-origin" })
      .then(function (response) {
        return response.ok ? response.text() : null;
      })
      .then(function (text) {
        if (text === null) {
          return;
        }
        var fresh = new DOMParser().parseFromString(text, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (old) {
          // Never pull the words out from under someone typing in this part of the page.
          if (old.contains(document.activeElement) || old.querySelector("details[open]")) {
            return;
          }
          var replacement = fresh.getElementById(old.id);
          if (replacement) {
            old.replaceWith(document.importNode(replacement, true));
          }
        });
        document.body.dataset.version = fresh.body.dataset.version || "";
      })
      .catch(function () {});
  }

  function live() {
    if (!window.EventSource || !document.querySelector("[data-live]")) {
      return;
    }
    var source = new EventSource("/events");
    source.addEventListener("changed", function (event) {
      if (event.data !== document.body.dataset.version) {
        document.body.dataset.version = event.data;
        refresh();
      }
    });
    window.addEventListener("pagehide", function () {
      source.close();
    });
  }

  function hint(value) {
    var length = Array.from(value).length;
    var words = value.trim().split(/\s+/).filter(Boolean).length;
    var kinds = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/].filter(function (re) {
      return re.test(value);
    }).length;
    if (length === 0) {
      return "Leave it empty to go without a passphrase.";
    }
    if (length < 8) {
      return "Strength: too short (at least 8 characters).";
    }
    if (words >= 4 || length >= 20) {
      return "Strength: strong.";
    }
    if ((length >= 12 && kinds >= 2) || words === 3) {
      return "Strength: fair. Another word or two makes it strong.";
    }
    return "Strength: weak. Add a few more words.";
  }

  function strength() {
    document.querySelectorAll("input[data-strength]").forEach(function (input) {
      var out = document.getElementById(input.dataset.strength);
      if (!out) {
        return;
      }
      input.addEventListener("input", function () {
        out.textContent = hint(input.value);
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    live();
    strength();
  });
})();
