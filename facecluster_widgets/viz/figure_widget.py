"""A plotly ``FigureWidget`` that survives a page reload with several figures alive in one kernel.

plotly's ``FigureWidget`` is an anywidget whose front-end code (``_esm``) is plotly's whole 4.96 MB widget
bundle, compiled again for every figure, each compile one uninterrupted task of the page
(``benchmarks/figure_bundle_load.py``: 1.1 s at load average 3 on this 2-core machine, 4-5 s with the CPU slowed
4×; 1.8 and 11 s under a load of 6-10).
anywidget 0.11 gives each model 2 s to load its code and run ``initialize``; a model that misses it logs
"[anywidget] Failed to initialize model." and drops every later message from the kernel: after a page reload with
a few explorers alive, maps stopped following their sliders.

:class:`FigureWidget` keeps plotly's own model and view code but loads it differently:

* its ``_esm`` is a small loader. plotly's bundle is no part of any widget's state (at 5 MB per figure, the state
  a reload asks for was so large that, with four to six explorers, the output stayed at "Loading widget..."): the
  first figure drawn in a page asks the kernel for it in a message, and it is compiled once per
  page, shared by every figure (keyed by plotly's version); a figure no cell shows costs nothing; the compile
  starts only once no widget of this package has started for 2.2 s (:data:`STARTED_MARK`), so that long task never
  runs while one of them is still within anywidget's limit;
* the loader's ``initialize`` returns at once, so the limit is met however slow the bundle is; changes the kernel
  sends before plotly's code is running are kept and handed to plotly's figure model, in order, when it is; the
  view waits for it;
* when the browser asks for the whole state (a page (re)load), the figure is sent as it is now, not as it was first
  displayed (plotly syncs its data only on display; later changes travel as restyle / relayout messages).
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

import plotly
import plotly.graph_objects as go

#: First statement of every anywidget module of this package: when one of its widgets last started in the page.
#: plotly's code is compiled in one uninterrupted task (1-2 s here, 4-11 s with the CPU slowed 4×); a widget whose
#: module is still loading when that task starts misses anywidget's 2 s limit, so the compile waits for a quiet page.
STARTED_MARK = 'globalThis[Symbol.for("facecluster_widgets.started")] = performance.now();\n'

_LOADER = STARTED_MARK + r"""
const STARTED = Symbol.for("facecluster_widgets.started");
const KEY = Symbol.for("facecluster_widgets.plotly." + __VERSION__);
const QUIET_MS = 2200;  // anywidget 0.11 gives a model 2 s to start
// Kernel -> browser messages that plotly's figure model applies to its data.
const PY2JS = ["_py2js_addTraces", "_py2js_deleteTraces", "_py2js_moveTraces", "_py2js_restyle",
               "_py2js_relayout", "_py2js_update", "_py2js_animate", "_py2js_removeLayoutProps",
               "_py2js_removeTraceProps"];

async function quiet() {  // until no widget of this package has started for QUIET_MS
  for (;;) {
    const since = performance.now() - (globalThis[STARTED] || 0);
    if (since >= QUIET_MS) return;
    await new Promise((resolve) => setTimeout(resolve, QUIET_MS - since + 20));
  }
}

const ASK_AGAIN_MS = 20000;  // a figure closed (or a kernel busy) before it answered: another figure asks again

function page() {  // the page's one load of plotly's code, started when a figure is first drawn
  if (!globalThis[KEY]) {
    let resolve, reject, answer, asked = -Infinity, chain = null;
    const promise = new Promise((ok, fail) => { resolve = ok; reject = fail; });
    const source = new Promise((ok) => { answer = ok; });  // plotly's code: never part of a widget's state
    const ask = (model) => {
      if (performance.now() - asked < ASK_AGAIN_MS) return;
      asked = performance.now();
      model.on("msg:custom", (message) => {
        if (message && message.type === "plotly-source") answer(message.source);
      });
      try {
        model.send({ type: "plotly-source" });
      } catch (error) {  // a closed figure: the next ask goes through a live one
        asked = -Infinity;
      }
    };
    globalThis[KEY] = {
      promise,
      start(model) {  // ``model``: the figure's own (not a view's, whose listeners go with the view)
        ask(model);
        const again = setInterval(() => ask(model), ASK_AGAIN_MS);
        source.then(() => clearInterval(again));
        chain = chain || Promise.all([source, quiet()]).then(([code]) => {
          performance.mark("facecluster_widgets: plotly compile");
          const url = URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
          return import(url).finally(() => URL.revokeObjectURL(url));
        }).then(resolve, reject);
      },
    };
  }
  return globalThis[KEY];
}

export default () => {
  let ready = null, own = null;
  return {
    initialize({ model }) {
      own = model;
      const queue = [], handlers = new Map(), replaying = new Map();
      let started = false, recording = false;
      for (const key of PY2JS) {
        model.on("change:" + key, () => {
          const value = model.get(key);
          if (!started && value !== null && value !== undefined) queue.push([key, value]);
        });
      }
      // plotly's model reads the message from the model and registers its handlers through ``on``: both are seen
      // here, so queued messages can be handed to it one by one.
      const seen = {
        ...model,
        get: (key) => (replaying.has(key) ? replaying.get(key) : model.get(key)),
        on: (name, callback) => {
          if (recording) handlers.set(name, [...(handlers.get(name) || []), callback]);
          model.on(name, callback);
        },
      };
      ready = page().promise.then((module) => {
        const figure = module.default();
        recording = true;
        figure.initialize({ model: seen });
        recording = false;
        started = true;
        for (const [key, value] of queue.splice(0)) {
          replaying.set(key, value);
          for (const callback of handlers.get("change:" + key) || []) callback();
          replaying.delete(key);
        }
        return figure;
      });
      ready.catch((error) => console.error("plotly's widget code did not load:", error));
    },
    async render({ model, el }) {
      page().start(own);
      const figure = await ready;
      return figure.render({ model, el });
    },
  };
};
"""


@cache
def _plotly_bundle() -> str:
    return (Path(plotly.__file__).parent / "package_data" / "widgetbundle.js").read_text(encoding="utf-8")


class FigureWidget(go.FigureWidget):
    """``go.FigureWidget`` whose plotly code loads once per page and whose model starts within anywidget's
    limit; on a full-state request (page reload) it sends the figure as it is now."""

    _esm = _LOADER.replace("__VERSION__", repr(plotly.__version__))

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.on_msg(self._send_plotly_code)

    def _send_plotly_code(self, _widget: object, content: object, _buffers: object) -> None:
        if isinstance(content, dict) and content.get("type") == "plotly-source":
            self.send({"type": "plotly-source", "source": _plotly_bundle()})

    def get_state(self, key=None, drop_defaults=False):  # noqa: ANN001, ANN201 (ipywidgets' signature)
        state = super().get_state(key, drop_defaults=drop_defaults)
        if key is None and hasattr(self, "_layout_obj"):  # (not while plotly's constructor opens the widget)
            for name, value in (("_widget_data", self._data), ("_widget_layout", self._layout_obj._props)):
                state[name] = self.trait_metadata(name, "to_json")(copy.deepcopy(value), self)
        return state
