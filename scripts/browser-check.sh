#!/usr/bin/env bash
# Renders the HTML report in headless Chromium and checks what a reader
# sees: the page opens with the ladder and the geometric-mean chart, every
# table and every chart is there and has a non-zero size, charts take the
# page's width, no number cell wraps its `±` onto a second line, the folded
# engine sections open to something, every in-page link has its target,
# and the page fetched nothing (it must open offline).
#
#   scripts/browser-check.sh [report/index.html]
#
# The report has no script of its own; the check is appended to a copy of
# it, runs as the page is parsed and writes its verdict into the DOM, which
# Chromium's --dump-dom prints. Debian's `chromium` is installed with
# apt-get when it is missing and apt is available; with neither, the check
# is skipped with a message and exit status 0.
set -euo pipefail
page="${1:-report/index.html}"
if [ ! -f "$page" ]; then
    echo "browser-check: $page not found (write it with vm-perf bench)" >&2
    exit 1
fi

find_browser() {
    for b in chromium chromium-browser google-chrome; do
        if command -v "$b" >/dev/null 2>&1; then
            command -v "$b"
            return
        fi
    done
}

browser="$(find_browser)"
why="apt-get is not available"
if [ -z "$browser" ] && command -v apt-get >/dev/null 2>&1; then
    why="apt-get could not install it"
    as_root=()
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
        as_root=(sudo -n)
    fi
    echo "browser-check: installing Debian's chromium with apt-get"
    if { "${as_root[@]}" apt-get update -qq && "${as_root[@]}" apt-get install -y -qq chromium; } >/dev/null 2>&1; then
        browser="$(find_browser)"
    fi
fi
if [ -z "$browser" ]; then
    echo "browser-check: skipped: chromium is not installed and $why"
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
copy="$work/page.html"
{
    cat "$page"
    cat <<'EOF'
<script>
(() => {
  const fails = [];
  const sized = (el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  document.querySelectorAll('details').forEach((d) => { d.open = true; });
  const tables = [...document.querySelectorAll('table')];
  tables.forEach((t, i) => {
    const before = (t.closest('div.wide') || t).previousElementSibling;
    const title = before ? before.textContent : '';
    if (!sized(t) || t.rows.length < 2) fails.push(`table ${i + 1} (${title}) is empty or has no size`);
  });
  // The first screen: the ladder (with the peers beside it), then the
  // geometric-mean chart, both before the first table of the run.
  const ladder = document.getElementById('ladder-steps');
  const beside = document.getElementById('ladder-peers');
  const geomean = document.getElementById('chart-geomean');
  const follows = (a, b) => a && b && (a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING);
  if (!ladder || ladder.rows.length < 3) fails.push('no ladder, or a ladder of fewer than two steps');
  else if (tables[0] !== ladder) fails.push('the page does not open with the ladder');
  if (!beside) fails.push('no peers beside the ladder');
  if (!follows(ladder, geomean)) fails.push('the geometric-mean chart does not follow the ladder');
  const others = tables.filter((t) => t !== ladder && t !== beside);
  if (others.length && !follows(geomean, others[0])) fails.push('a table comes before the geometric-mean chart');
  // Charts use the page's width; number cells keep their `±` on their line.
  const page = document.body.clientWidth;
  if (geomean && geomean.querySelector('svg') &&
      geomean.querySelector('svg').getBoundingClientRect().width < 0.9 * page) {
    fails.push(`the geometric-mean chart is narrower than the page (${Math.round(geomean.querySelector('svg').getBoundingClientRect().width)} of ${page} px)`);
  }
  let wrapped = 0;
  document.querySelectorAll('td.num').forEach((td) => {
    const range = document.createRange();
    range.selectNodeContents(td);
    const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
    if (lines.size > 1) wrapped += 1;
  });
  if (wrapped) fails.push(`${wrapped} number cells wrap onto a second line`);
  const figures = [...document.querySelectorAll('figure')];
  figures.forEach((f) => {
    const svg = f.querySelector('svg');
    if (!svg || !sized(svg)) fails.push(`chart ${f.id} is missing or has no size`);
  });
  const ids = figures.map((f) => f.id);
  if (!ids.includes('chart-geomean')) fails.push('no geometric-mean chart');
  if (!ids.some((id) => id.startsWith('breakeven-'))) fails.push('no break-even chart');
  const engines = [...document.querySelectorAll('section.engine')];
  if (engines.length === 0) fails.push('no engine section');
  engines.forEach((s) => {
    if (!sized(s) || !s.querySelector('p')) fails.push(`engine section ${s.id} has no summary`);
    s.querySelectorAll('details').forEach((d) => {
      if (!sized(d) || d.textContent.trim().length < 20) fails.push(`${s.id}: folded part is empty`);
    });
  });
  document.querySelectorAll('a[href^="#"]').forEach((a) => {
    const target = a.getAttribute('href').slice(1);
    if (!document.getElementById(target)) fails.push(`link to missing #${target}`);
  });
  const fetched = performance.getEntriesByType('resource').map((e) => e.name);
  if (fetched.length) fails.push(`fetched: ${fetched.join(', ')}`);
  const out = document.createElement('pre');
  out.id = 'browser-check';
  out.textContent = fails.length
    ? `FAIL\n${fails.join('\n')}`
    : `OK tables=${tables.length} charts=${figures.length} engines=${engines.length}`;
  document.body.appendChild(out);
})();
</script>
EOF
} >"$copy"

# The flags that work in this sandbox (as root, with a closed network).
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic \
    --no-first-run --disable-background-networking --disable-component-update \
    --disable-sync --user-data-dir="$work/profile" --window-size=1280,1000 \
    --dump-dom "file://$(realpath "$copy")" >"$work/dom.html" 2>"$work/stderr.txt" || {
    echo "browser-check: $browser failed:" >&2
    tail -n 20 "$work/stderr.txt" >&2
    exit 1
}

verdict="$(perl -0ne 'print $1 if m{<pre id="browser-check">(.*?)</pre>}s' "$work/dom.html")"
if [ -z "$verdict" ]; then
    echo "browser-check: the check did not run in $page (no verdict in the DOM)" >&2
    exit 1
fi
case "$verdict" in
OK*) ;;
*)
    echo "browser-check: $page: $verdict" >&2
    exit 1
    ;;
esac

# What Chromium laid out must be all the source has: nothing dropped by the
# parser (an unclosed tag, a stray SVG) goes unnoticed.
tables="$(grep -o '<table' "$page" | wc -l)"
charts="$(grep -o '<figure' "$page" | wc -l)"
case "$verdict" in
"OK tables=$tables charts=$charts "*) ;;
*)
    echo "browser-check: $page has $tables tables and $charts charts, but Chromium laid out: $verdict" >&2
    exit 1
    ;;
esac
echo "browser-check: $page in $("$browser" --version 2>/dev/null | head -n 1): ${verdict#OK }, each with a non-zero size; nothing fetched"
