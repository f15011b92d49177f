"""The shipped workflows as an artist sees them: ComfyUI's real frontend in a headless Chromium.

Needs, besides the real-host setup (conftest.py): Playwright for Python (``pip install playwright``;
no browser download) and a Chromium binary - Debian's ``apt-get install chromium`` (``/usr/bin/chromium``)
or the one named by ``UNIANIMATE_CHROMIUM``. Skipped when either is missing.

Every shipped workflow is fetched the way the Templates browser fetches it and loaded into the
frontend of the test server, with a portrait driving video and a portrait reference photo in the
input folder (a Load Video preview grows its node with the video's aspect ratio) and placeholder files
under the model names the workflows use (so file combos can be checked). The check fails on:

* node types the frontend does not know (missing nodes);
* broken links: a link whose nodes or slots do not exist, whose slots do not point back at it, or
  whose type neither end accepts;
* widget values the widget does not offer (combos) or that lie outside its min/max (numbers);
* overlapping nodes (title bar included), measured after the media previews have loaded;
* a prompt (the frontend's own graphToPrompt) that differs from the shipped API-format copy.

Also checked: the Templates listing and thumbnails (``<name>.jpg``), the "?" help pages
(``/extensions/<pack>/docs/<node id>/en.md``), and that workflows saved with the old combo labels
load with their values intact (the real-host run test runs one of them).
"""
from __future__ import annotations

import json
import os
import shutil
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / "workflows"
LEGACY = REPO / "tests" / "nodes" / "data" / "legacy_workflows"
PACK = "ComfyUI-UniAnimate"  # the pack's folder name in the test server's custom_nodes
OUR_NODES = ("LoadUniAnimateModel", "UniAnimateSampler", "UniAnimatePoseExtractor", "UniAnimatePoseAlign",
             "UniAnimateLongVideoLoop")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def chromium() -> str | None:
    path = os.environ.get("UNIANIMATE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    return path if path and Path(path).is_file() else None


def stems() -> list[str]:
    return sorted(p.stem for p in WORKFLOWS.glob("*.json"))


@pytest.fixture(scope="module")
def frontend_server(comfy_server):
    """The test server with what the shipped workflows name: portrait media and placeholder model files."""
    from PIL import Image

    shutil.copyfile(REPO / "demo" / "driving.mp4", comfy_server.input / "driving.mp4")  # 176 x 350, portrait
    photo = Image.open(REPO / "demo" / "reference.png").convert("RGB")
    photo.crop((80, 0, 320, 400)).save(comfy_server.input / "reference.png")  # 240 x 400, portrait
    photo.crop((80, 0, 320, 400)).transpose(Image.FLIP_LEFT_RIGHT).save(comfy_server.input / "target_pose.png")
    for ui in WORKFLOWS.glob("*.json"):
        for node in json.loads(ui.read_text())["nodes"]:
            folder = {"CheckpointLoaderSimple": "checkpoints", "VAELoader": "vae", "CLIPVisionLoader": "clip_vision",
                      "LoadUniAnimateModel": "unianimate", "CLIPLoader": "text_encoders"}.get(node["type"])
            if folder and node.get("mode", 0) == 0:
                target = comfy_server.models / folder / node["widgets_values"][0]
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(b"placeholder: lists the name, never loaded by these checks")
    for name in ("yolox_l.onnx", "dw-ll_ucoco_384.onnx"):
        target = comfy_server.models / "dwpose" / name
        if not target.exists():
            shutil.copyfile(REPO / "tests" / "fixtures" / "dwpose" / name, target)
    return comfy_server


@pytest.fixture(scope="module")
def page(frontend_server):
    binary = chromium()
    if binary is None:
        pytest.skip("no Chromium binary (apt-get install chromium, or set UNIANIMATE_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed (pip install playwright; no browser download needed)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=binary, headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(frontend_server.url, wait_until="networkidle", timeout=180_000)
        page.wait_for_function("() => window.app && window.app.graph && window.LiteGraph", timeout=180_000)
        yield Frontend(page, errors)
        browser.close()


class Frontend:
    """The loaded frontend page and the JavaScript errors it raised."""

    def __init__(self, page, errors: list[str]):
        self.page, self.errors = page, errors

    def evaluate(self, script: str, arg=None):
        return self.page.evaluate(script, arg) if arg is not None else self.page.evaluate(script)


def fetch(server, path: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(server.url + urllib.parse.quote(path), timeout=60) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read()


# ------------------------------------------------------------------------------ in the browser
INSPECT = """async () => {
  const app = window.app, LG = window.LiteGraph, g = app.graph;
  const titleH = LG.NODE_TITLE_HEIGHT;
  const links = g.links instanceof Map ? [...g.links.values()] : Object.values(g.links || {});
  const accepts = (a, b) => {
    if (!a || !b || a === '*' || b === '*') return true;
    const A = String(a).split(','), B = String(b).split(',');
    return A.some(t => B.includes(t));
  };
  const problems = [];
  for (const n of g._nodes) {
    if (!LG.registered_node_types[n.type]) problems.push(`missing node type ${n.type} (node ${n.id})`);
    for (const [i, inp] of (n.inputs || []).entries())
      if (inp.link != null && !links.some(l => l.id === inp.link)) problems.push(`node ${n.id} input ${inp.name}: link ${inp.link} does not exist`);
    if (n.mode === 4) continue;  // bypassed: never sent to the server
    for (const w of n.widgets || []) {
      if (w.type === 'combo') {
        let values = w.options && w.options.values;
        if (typeof values === 'function') values = values(w, n);
        if (Array.isArray(values) && !values.includes(w.value)) problems.push(`node ${n.id} (${n.type}) ${w.name} = ${JSON.stringify(w.value)} is not one of its options`);
      } else if (w.type === 'number') {
        const o = w.options || {};
        if ((o.min != null && w.value < o.min) || (o.max != null && w.value > o.max)) problems.push(`node ${n.id} ${w.name} = ${w.value} outside ${o.min}..${o.max}`);
      }
    }
  }
  for (const l of links) {
    const a = g.getNodeById(l.origin_id), b = g.getNodeById(l.target_id);
    if (!a || !b) { problems.push(`link ${l.id}: node ${!a ? l.origin_id : l.target_id} does not exist`); continue; }
    const out = (a.outputs || [])[l.origin_slot], inp = (b.inputs || [])[l.target_slot];
    if (!out || !inp) { problems.push(`link ${l.id}: slot ${!out ? l.origin_slot : l.target_slot} does not exist`); continue; }
    if (!(out.links || []).includes(l.id) || inp.link !== l.id) problems.push(`link ${l.id}: its slots do not point back at it`);
    if (!accepts(out.type, inp.type)) problems.push(`link ${l.id}: ${a.type}.${out.name} (${out.type}) -> ${b.type}.${inp.name} (${inp.type})`);
  }
  const rects = g._nodes.map(n => ({id: n.id, type: n.type, title: n.title, x: n.pos[0], y: n.pos[1] - titleH,
                                    w: n.size[0], h: n.size[1] + titleH}));
  const overlaps = [];
  for (let i = 0; i < rects.length; i++) for (let j = i + 1; j < rects.length; j++) {
    const a = rects[i], b = rects[j];
    const dx = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x), dy = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
    if (dx > 0 && dy > 0) overlaps.push(`${a.title || a.type} (${a.id}) and ${b.title || b.type} (${b.id}) overlap by ${Math.round(dx)} x ${Math.round(dy)} px`);
  }
  const prompt = (await app.graphToPrompt()).output;
  const combos = g._nodes.filter(n => n.type.startsWith('UniAnimate')).map(n =>
      [n.id, Object.fromEntries((n.widgets || []).filter(w => w.type === 'combo').map(w => [w.name, w.value]))]);
  return {problems, overlaps, prompt, combos, sizes: g._nodes.map(n => [n.id, ...n.size.map(Math.round)])};
}"""


def load(page, workflow: dict) -> dict:
    """Load a UI workflow, wait until the node sizes settle (media previews loaded), inspect it."""
    page.evaluate("(wf) => window.app.loadGraphData(wf)", workflow)
    last, stable_since = None, time.time()
    deadline = time.time() + 60
    while time.time() < deadline:
        time.sleep(0.5)
        sizes = page.evaluate("() => window.app.graph._nodes.map(n => [n.id, ...n.size.map(Math.round)])")
        if sizes != last:
            last, stable_since = sizes, time.time()
        elif time.time() - stable_since > 3:
            break
    return page.evaluate(INSPECT)


def canonical(prompt: dict, info: dict) -> dict:
    """class_type + declared inputs, numbers as floats (the frontend writes 1.0 as 1, and adds values of
    frontend-only widgets such as Load Video's preview, which the server ignores)."""
    def norm(v):
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v

    def declared(cls):
        return {n for section in info[cls]["input"].values() for n in section}
    return {k: {"class_type": v["class_type"],
                "inputs": {n: norm(x) for n, x in v["inputs"].items() if n in declared(v["class_type"])}}
            for k, v in prompt.items()}


@pytest.fixture(scope="module")
def object_info(frontend_server):
    return frontend_server.get("/object_info", timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("stem", stems())
def test_shipped_workflow_loads_cleanly_in_the_real_frontend(frontend_server, page, object_info, stem):
    status, kind, body = fetch(frontend_server, f"/api/workflow_templates/{PACK}/{stem}.json")
    assert status == 200
    found = load(page, json.loads(body))
    assert found["problems"] == [], found["problems"]
    assert found["overlaps"] == [], (found["overlaps"], found["sizes"])
    api = json.loads((WORKFLOWS / "api" / f"{stem}.json").read_text())
    assert canonical(found["prompt"], object_info) == canonical(api, object_info)  # the shipped API copy is what the frontend queues
    assert page.errors == []


@pytest.mark.slow
@pytest.mark.parametrize("stem", sorted(p.stem for p in LEGACY.glob("*.json")))
def test_workflows_saved_with_old_combo_labels_load_unchanged(frontend_server, page, object_info, stem):
    """The frontend keeps the old display labels (it does not reset values missing from a combo) and queues
    them; the server accepts them (see test_workflow_saved_with_old_combo_labels_runs)."""
    found = load(page, json.loads((LEGACY / f"{stem}.json").read_text()))
    labels = {v for _, combos in found["combos"] for k, v in combos.items() if k in ("colors", "pose_colors")}
    assert labels and all("(" in v for v in labels), labels  # still the long labels
    assert all(p.startswith("node ") and "not one of its options" in p and ("colors" in p) for p in found["problems"])
    if "video" in stem:  # the old layout: the checker sees the portrait preview cover Get Video Components
        assert any("Driving video (5)" in o and "(6)" in o for o in found["overlaps"]), found["overlaps"]
    saved = canonical(json.loads((LEGACY / "api" / f"{stem}.json").read_text()), object_info)
    for nid, node in canonical(found["prompt"], object_info).items():
        added = {k: v for k, v in node["inputs"].items() if k not in saved[nid]["inputs"]}
        assert set(added) <= {"denoise"} and all(v == 1.0 for v in added.values()), added
        assert {k: v for k, v in node["inputs"].items() if k not in added} == saved[nid]["inputs"]


def test_templates_browser_lists_every_workflow_with_a_thumbnail(frontend_server):
    from io import BytesIO

    from PIL import Image

    _, _, body = fetch(frontend_server, "/workflow_templates")
    assert sorted(json.loads(body)[PACK]) == stems()  # the title the browser shows is the file name
    for stem in stems():
        status, kind, data = fetch(frontend_server, f"/api/workflow_templates/{PACK}/{stem}.jpg")
        assert status == 200 and kind == "image/jpeg", stem
        assert Image.open(BytesIO(data)).size == (512, 512)


def test_help_pages_are_served_where_the_frontend_asks(frontend_server, object_info):
    for node_id in OUR_NODES:
        module = object_info[node_id]["python_module"].split(".")[-1]  # what the frontend's help lookup uses
        status, kind, body = fetch(frontend_server, f"/extensions/{module}/docs/{node_id}/en.md")
        assert status == 200 and "text/html" not in kind and body.decode().startswith("# "), node_id
