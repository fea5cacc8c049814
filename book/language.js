// SPDX-License-Identifier: GPL-2.0
//
// The language switch: a link in the menu bar to the same page in the other
// edition. The English book is at the root of the output, the Chinese one in
// zh-CN/, both with the same page names, so the link is relative and works
// from a file:// URL as well as from a server.
(function () {
    "use strict";
    var zh = document.documentElement.lang === "zh-CN";
    var page = window.location.pathname.split("/").pop() || "index.html";
    var link = document.createElement("a");
    link.id = "workbook-language";
    link.href = (zh ? "../" : "zh-CN/") + page;
    link.hreflang = zh ? "en" : "zh-CN";
    link.lang = zh ? "en" : "zh-CN";
    link.title = zh ? "Read this page in English" : "阅读本页的中文版";
    link.setAttribute("aria-label", link.title);
    link.textContent = zh ? "English" : "中文";
    link.style.marginInline = "0.5em";
    var buttons = document.querySelector(".right-buttons");
    if (buttons) {
        buttons.insertBefore(link, buttons.firstChild);
    }
})();
