"""Why a page reload sometimes shows "Error displaying widget: model not found": JupyterLab's widget restore, traced.

    .venv/bin/python benchmarks/reload_trace.py [--runs 6] [--reload 4,2,4] [--out FILE.json]

The reload browser test (``tests/test_browser.py -k reload``; ``--reload`` is its FACECLUSTER_RELOAD: explorers
shown, explorers made earlier, CPU slow-down) is run ``--runs`` times against a traced copy of JupyterLab's widget
manager (``@jupyter-widgets/jupyterlab-manager`` as installed, copied into a scratch folder put first on
JUPYTER_PATH, which JupyterLab serves ahead of the installed one; the installed files are never touched). The copy
logs to the page's console when a notebook's restore starts, how many models the kernel's bulk answer held, when
the restore is done, when something asks for a model not there yet (the start of the manager's 2 s poll), and, when
an output gives up on its model, which model and whether that answer held it. Per run it prints, for the reloaded
notebook: passed or not, the models restored, the seconds from the restore's start to its end, and from the output's
first unanswered ask to the restore's end.

What it showed on 2026-12-05 (README, "A page reload"): failing runs are those whose restore ends ~2 s after it
started, inside the last 100 ms wait of the output's 2 s poll for its model (ipywidgets issue #4026).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANAGER = Path(sys.prefix) / "share/jupyter/labextensions/@jupyter-widgets/jupyterlab-manager"
NOTEBOOK = "reload.ipynb"  # the notebook the reload test writes

#: (what the minified code of jupyterlab_widgets 3.0.17 says, what the traced copy says instead). Each must occur
#: exactly once in the extension's files: another version fails here, clearly, rather than tracing nothing.
PATCHES = (
    ('async restoreWidgets(e,{loadKernel:t,loadNotebook:i}={loadKernel:!0,loadNotebook:!0}){try{'
     'if(await this.context.sessionContext.ready,t)try{this._kernelRestoreInProgress=!0,await this._loadFromKernel()}'
     'finally{this._kernelRestoreInProgress=!1}i&&await this._loadFromNotebook(e),this._restoredStatus=!0,'
     'this._restored.emit()}catch(e){}}',
     'async restoreWidgets(e,{loadKernel:t,loadNotebook:i}={loadKernel:!0,loadNotebook:!0}){'
     'const P=this._context.path,R=Math.random().toString(36).slice(2,8);console.log("FCTRACE start",R,P);try{'
     'if(await this.context.sessionContext.ready,t)try{this._kernelRestoreInProgress=!0,await this._loadFromKernel()}'
     'finally{this._kernelRestoreInProgress=!1}i&&await this._loadFromNotebook(e),this._restoredStatus=!0,'
     'console.log("FCTRACE done",R,P,Object.keys(this._models).length),'
     'this._restored.emit()}catch(e){console.log("FCTRACE failed",R,P,String(e))}}'),
    ('}catch(e){return this._loadFromKernelModels()}let o=e.states,',
     '}catch(e){console.log("FCTRACE fallback",String(e));return this._loadFromKernelModels()}'
     'console.log("FCTRACE states",Object.keys(e.states).length);'
     '(window.__fcStates=window.__fcStates||[]).push(Object.keys(e.states));let o=e.states,'),
    ('async get_model(e){let t=this._models[e];if(void 0===t){let o=Date.now();',
     'async get_model(e){let t=this._models[e];if(void 0===t){'
     'console.log("FCTRACE waits",e,this._context?this._context.path:"-");let o=Date.now();'),
    ('if(o.restoredStatus){this.node.textContent="Error displaying widget: model not found"',
     'if(o.restoredStatus){console.log("FCTRACE missing",r.model_id,'
     '(window.__fcStates||[]).some(k=>k.includes(r.model_id)),o._context?o._context.path:"-");'
     'this.node.textContent="Error displaying widget: model not found"'),
)


def traced_manager(into: Path, source: Path = MANAGER) -> Path:
    """A copy of the widget manager extension under ``into/labextensions`` with the trace added; returns ``into``."""
    if not source.is_dir():
        raise SystemExit(f"{source}: JupyterLab's widget manager is not installed here")
    target = into / "labextensions/@jupyter-widgets/jupyterlab-manager"
    shutil.copytree(source, target)
    scripts = {path: path.read_text(encoding="utf-8") for path in (target / "static").glob("*.js")}
    for before, after in PATCHES:
        holders = [path for path, text in scripts.items() if text.count(before) == 1]
        if len(holders) != 1 or sum(text.count(before) for text in scripts.values()) != 1:
            raise SystemExit(f"{source}: this jupyterlab_widgets is not the version the trace was written for "
                             f"(3.0.17): {before[:60]!r}... is not in exactly one place")
        scripts[holders[0]] = scripts[holders[0]].replace(before, after)
    for path, text in scripts.items():
        path.write_text(text, encoding="utf-8")
    return into


_LINE = re.compile(r"^(?P<t>\d+\.\d+) log: FCTRACE (?P<what>\w+) (?P<rest>.*)$")
#: The line the reload test writes into the console log just before it reloads the page.
RELOAD_MARK = "mark: page reload"


def read_trace(text: str, notebook: str = NOTEBOOK) -> dict:
    """After the last page reload in a console log, for ``notebook``: the seconds from its restore's start to its
    end, from the first output's first unanswered ask for a model (the start of its 2 s poll) to the restore's end,
    the models restored, and the models an output gave up on (with whether the kernel's answer held them)."""
    lines = text.splitlines()
    marks = [i for i, line in enumerate(lines) if line.endswith(RELOAD_MARK)]
    starts, asked = {}, None
    result = {"restore_s": None, "ask_to_restored_s": None, "models": None, "missing": []}
    for line in lines[marks[-1] + 1 if marks else 0:]:
        match = _LINE.match(line)
        if not match:
            continue
        t, what, rest = float(match["t"]), match["what"], match["rest"].split()
        if what == "start" and rest[1:2] == [notebook]:
            starts[rest[0]] = t
        elif what == "waits" and rest[1:2] == [notebook] and asked is None:
            asked = t
        elif what == "done" and rest[0] in starts:
            result.update(restore_s=round(t - starts[rest[0]], 3), models=int(rest[2]),
                          ask_to_restored_s=None if asked is None else round(t - asked, 3))
        elif what == "missing" and rest[2:3] == [notebook]:
            result["missing"].append({"model": rest[0], "in_kernel_answer": rest[1] == "true"})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--reload", default="4,2,4", help="explorers shown, made earlier, CPU slow-down")
    parser.add_argument("--out", type=Path, help="write every run as JSON")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="fc-reload-trace-") as scratch:
        data = traced_manager(Path(scratch) / "jupyter")
        for i in range(args.runs):
            log = Path(scratch) / f"console-{i}.log"
            env = {**os.environ, "FACECLUSTER_RELOAD": args.reload, "FACECLUSTER_CONSOLE_LOG": str(log),
                   "JUPYTER_PATH": os.pathsep.join(filter(None, [str(data), os.environ.get("JUPYTER_PATH")]))}
            done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                                   str(ROOT / "tests/test_browser.py"), "-k", "reload"],
                                  cwd=ROOT, env=env, capture_output=True, text=True)
            trace = read_trace(log.read_text(encoding="utf-8") if log.exists() else "")
            if trace["restore_s"] is None:
                raise SystemExit(f"run {i + 1}: no traced restore of {NOTEBOOK} in {log}: was the traced manager "
                                 f"served? pytest said:\n{done.stdout[-2000:]}")
            runs.append({"run": i + 1, "passed": done.returncode == 0, **trace})
            print(f"run {i + 1}: {'passed' if done.returncode == 0 else 'FAILED'}; {trace['models']} models "
                  f"restored in {trace['restore_s']:.2f} s, {trace['ask_to_restored_s']} s after the output first "
                  f"asked for its model; outputs that gave up: {len(trace['missing'])}", flush=True)
    if args.out:
        args.out.write_text(json.dumps({"reload": args.reload, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
