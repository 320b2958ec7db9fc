/* churnguard dashboard: draws the Plotly charts, makes table rows clickable, and runs the
   sign-in form and the campaign planner. No data is ever written into the page as HTML:
   values from the server go into textContent only. */
(function () {
  "use strict";

  var pageData = {};
  var block = document.getElementById("page-data");
  if (block) {
    pageData = JSON.parse(block.textContent || "{}");
  }
  var lang = pageData.lang || "en";
  var strings = pageData.strings || {};
  var locale = lang === "zh" ? "zh-CN" : "en-US";
  var whole = new Intl.NumberFormat(locale, { maximumFractionDigits: 0 });
  var oneDecimal = new Intl.NumberFormat(locale, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  var money = new Intl.NumberFormat(locale, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  var plotConfig = { responsive: true, displaylogo: false,
                     modeBarButtonsToRemove: ["lasso2d", "select2d", "toImage"] };

  function say(key, values) {
    var text = strings[key] || key;
    return text.replace(/\{(\w+)\}/g, function (whole, name) {
      return values && name in values ? String(values[name]) : whole;
    });
  }

  function errorMessage(response, body) {
    if (body && body.error && body.error.message) { return body.error.message; }
    return "HTTP " + response.status;
  }

  function readJson(response) {
    return response.json().catch(function () { return null; });
  }

  /* -- charts ---------------------------------------------------------------------------- */
  function drawCharts() {
    if (!window.Plotly) { return; }
    document.querySelectorAll("[data-chart]").forEach(function (box) {
      var data = document.getElementById(box.getAttribute("data-chart"));
      if (!data) { return; }
      var figure = JSON.parse(data.textContent);
      window.Plotly.newPlot(box, figure.data, figure.layout, plotConfig);
    });
  }

  /* -- tables and filters ------------------------------------------------------------------- */
  function wireTables() {
    document.querySelectorAll("tr[data-href]").forEach(function (row) {
      row.addEventListener("click", function (event) {
        if (event.target.closest("a, button, input, select")) { return; }
        window.location.assign(row.getAttribute("data-href"));
      });
    });
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
  }

  /* -- sign-in ------------------------------------------------------------------------------ */
  function wireSignIn() {
    var form = document.getElementById("sign-in");
    if (!form) { return; }
    var result = document.getElementById("sign-in-result");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      result.textContent = say("sign_in_working");
      fetch("/dashboard/session", {
        method: "POST", credentials: "same-origin",
        headers: { "X-API-Key": document.getElementById("api-key").value }
      }).then(function (response) {
        if (response.ok) {
          window.location.assign(form.getAttribute("data-next") || "/");
          return null;
        }
        return readJson(response).then(function (body) {
          result.textContent = say("sign_in_failed", { message: errorMessage(response, body) });
        });
      });
    });
  }

  /* -- campaign planner ---------------------------------------------------------------------- */
  function wirePlanner() {
    var planner = document.getElementById("planner");
    if (!planner) { return; }
    var slider = document.getElementById("budget");
    var output = document.getElementById("budget-value");
    var status = document.getElementById("planner-status");
    var curveBox = document.getElementById("chart-budget");
    var touched = false;
    var latest = 0;
    var timer = null;
    var curveDrawn = false;

    function setText(id, text) {
      var element = document.getElementById(id);
      if (element) { element.textContent = text; }
    }

    function showPreview(preview) {
      setText("preview-contacted", whole.format(preview.contacted));
      setText("preview-saves", oneDecimal.format(preview.expected_saves));
      setText("preview-cost", money.format(preview.expected_cost));
      setText("preview-margin", money.format(preview.expected_margin));
      document.getElementById("preview-saves").setAttribute("data-budget", String(preview.budget));
      var body = document.querySelector("#preview-actions tbody");
      body.replaceChildren();
      preview.per_action.forEach(function (row) {
        var tr = document.createElement("tr");
        [row.action, whole.format(row.customers), oneDecimal.format(row.expected_saves),
         money.format(row.expected_cost)].forEach(function (value, i) {
          var td = document.createElement("td");
          if (i > 0) { td.className = "num"; }
          td.textContent = value;
          tr.appendChild(td);
        });
        body.appendChild(tr);
      });
      if (curveDrawn && window.Plotly) {
        window.Plotly.relayout(curveBox, { "shapes[0].x0": preview.budget,
                                           "shapes[0].x1": preview.budget });
      }
    }

    function refresh(withCurve) {
      var mine = ++latest;
      var asked = Number(slider.value);
      var url = "/dashboard/api/plan-preview?budget=" + encodeURIComponent(slider.value) +
        (withCurve ? "&curve=true" : "") + (lang === "zh" ? "&lang=zh" : "");
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (response) {
          return readJson(response).then(function (body) {
            if (mine !== latest) { return; }  // a newer slider position is on its way
            if (!body) {
              status.textContent = say("planner_failed", { message: "HTTP " + response.status });
              return;
            }
            if (body.status === "preparing") {
              planner.setAttribute("data-status", "preparing");
              status.textContent = say("planner_preparing");
              window.setTimeout(function () { refresh(true); }, 1000);
              return;
            }
            if (body.status !== "ready") {
              planner.setAttribute("data-status", "error");
              status.textContent = say("planner_failed",
                                       { message: body.message || errorMessage(response, body) });
              return;
            }
            if (body.curve) {
              var top = body.max_budget;
              slider.max = String(top);
              slider.step = String(Math.max(top / 200, 0.01));
              var wanted = touched ? Number(slider.value) : Number(planner.getAttribute("data-start"));
              slider.value = String(Math.min(top, Math.max(0, wanted)));
              output.textContent = money.format(Number(slider.value));
              if (window.Plotly) {
                body.curve.layout.shapes[0].x0 = Number(slider.value);
                body.curve.layout.shapes[0].x1 = Number(slider.value);
                window.Plotly.newPlot(curveBox, body.curve.data, body.curve.layout, plotConfig);
                curveDrawn = true;
              }
            }
            planner.setAttribute("data-status", "ready");
            planner.setAttribute("data-as-of", body.as_of.slice(0, 10));
            status.textContent = "";
            // Setting the slider's range may have moved it (the browser clamps its value to the
            // new maximum at once): then this preview is for a budget no longer shown; ask again.
            if (Math.abs(Number(slider.value) - asked) > 1e-9) {
              refresh(false);
            } else {
              showPreview(body.preview);
            }
          });
        });
    }

    slider.addEventListener("input", function () {
      touched = true;
      output.textContent = money.format(Number(slider.value));
      window.clearTimeout(timer);
      timer = window.setTimeout(function () { refresh(false); }, 120);
    });
    output.textContent = money.format(Number(slider.value));
    refresh(true);

    var form = document.getElementById("commit");
    var result = document.getElementById("commit-result");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var key = document.getElementById("write-key");
      if (!key.value) { result.textContent = say("commit_missing_key"); return; }
      var campaign = document.getElementById("campaign-id").value.trim();
      result.textContent = say("commit_working");
      fetch("/dashboard/api/plans", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-API-Key": key.value },
        body: JSON.stringify({ budget: Number(slider.value), campaign_id: campaign || null })
      }).then(function (response) {
        return readJson(response).then(function (body) {
          if (response.ok && body) {
            key.value = "";
            result.setAttribute("data-campaign", body.campaign_id);
            result.textContent = say("commit_done", { campaign: body.campaign_id,
              treated: whole.format(body.treated), control: whole.format(body.control) });
          } else {
            result.textContent = say("commit_failed", { message: errorMessage(response, body) });
          }
        });
      });
    });
  }

  function start() {
    drawCharts();
    wireTables();
    wireSignIn();
    wirePlanner();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
