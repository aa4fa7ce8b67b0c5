// The sign-up form's proof-of-work, solved in the visitor's browser.
//
// The form carries a challenge signed by the server. This finds a number n such that
// SHA-256(challenge + ":" + n) starts with the required count of zero bits, puts it in
// the hidden challenge_answer field and lets the form go. The work starts when the
// visitor first touches the form, so it is usually done before they press the button.
(function () {
  "use strict";

  var form = document.querySelector("form[data-challenge-bits]");
  if (!form) {
    return;
  }
  var bits = parseInt(form.getAttribute("data-challenge-bits"), 10);
  // leave a minute's margin so the answer reaches the server before the challenge expires
  var maxAgeMs = (parseInt(form.getAttribute("data-challenge-max-age"), 10) - 60) * 1000;
  var challenge = form.elements.namedItem("challenge").value;
  var answer = form.elements.namedItem("challenge_answer");
  var button = form.querySelector("button[type=submit]");
  var status = document.getElementById("challenge-status");
  var loadedAt = Date.now();
  var solving = null;

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  function zeroBits(bytes) {
    var count = 0;
    for (var i = 0; i < bytes.length; i++) {
      if (bytes[i] !== 0) {
        return count + Math.clz32(bytes[i]) - 24;
      }
      count += 8;
    }
    return count;
  }

  async function solve() {
    var encoder = new TextEncoder();
    var prefix = challenge + ":";
    // many digests in flight at once: one at a time spends most of its time waiting
    var batch = 256;
    for (var start = 0; ; start += batch) {
      var jobs = [];
      for (var n = start; n < start + batch; n++) {
        jobs.push(crypto.subtle.digest("SHA-256", encoder.encode(prefix + n)));
      }
      var digests = await Promise.all(jobs);
      for (var i = 0; i < digests.length; i++) {
        if (zeroBits(new Uint8Array(digests[i])) >= bits) {
          return String(start + i);
        }
      }
    }
  }

  function begin() {
    if (!solving) {
      solving = solve().then(function (found) {
        answer.value = found;
        return found;
      });
    }
    return solving;
  }

  if (!window.crypto || !crypto.subtle) {
    // browsers offer crypto.subtle only to https pages (and to localhost)
    say("This form works only over a secure (https) connection.");
    return;
  }

  // a page brought back by the Back button holds a challenge that was used already
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      window.location.reload();
    }
  });
  form.addEventListener("focusin", begin, { once: true });
  form.addEventListener("submit", function (event) {
    if (Date.now() - loadedAt > maxAgeMs) {
      event.preventDefault();
      say("This page has been open for a long time: reload it, then sign up again.");
      return;
    }
    if (answer.value) {
      return;
    }
    event.preventDefault();
    button.disabled = true;
    say("One moment: checking that you are not a robot…");
    begin().then(function () {
      form.submit();
    });
  });
  button.disabled = false;
  say("");
})();
