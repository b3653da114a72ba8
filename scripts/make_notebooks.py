"""Write the notebooks from their cell sources, so they stay reviewable as plain text and carry no outputs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent.parent / "notebooks"
#: Every notebook extracts the default dataset into this store (beside the notebooks, gitignored): the first one
#: to run does the work, the others find every result there.
STORE = ".facecluster-cache/quickstart"


def md(text: str):
    return new_markdown_cell(textwrap.dedent(text).strip())


def code(text: str):
    return new_code_cell(textwrap.dedent(text).strip())


SETUP = code(f"""
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    import facecluster_widgets as fc

    store = fc.extract(fc.load_faces(fc.default_data_dir()), store={STORE!r}, progress=False)
    # edits=fc.EditLog(): the method alone, without any corrections saved in the store by the explorer
    session = fc.ClusterSession.from_store(store, edits=fc.EditLog(), persist=False)
    faces = session.faces
    print(f"{{len(faces)}} faces of {{len(set(faces.labels) - {{None}})}} people")
""")

QUICKSTART = [
    new_markdown_cell(
        "# Quickstart: load a folder of faces and extract what the method needs\n\n"
        "The toolkit reads the default dataset (`$FACECLUSTER_DATA`, else `../shared/datasets/lfw10`), runs the\n"
        "pipeline with progress bars, and keeps every result in a store so a rerun only does new work."
    ),
    new_code_cell(
        "import facecluster_widgets as fc\n\n"
        "data = fc.default_data_dir()\n"
        "faces = fc.load_faces(data)\n"
        "print(f'{len(faces)} images of {len(faces.identities)} people from {data}')"
    ),
    new_markdown_cell("Extract into a store beside this notebook. Run the cell twice: the second run reads the store."),
    new_code_cell(
        "store = fc.extract(faces, store='.facecluster-cache/quickstart')\n"
        "run = store.read_json('run')\n"
        "print(f\"{run['n_faces']} faces, {run['n_unreadable']} unreadable, {run['wall_seconds']} s\", run['counts'])"
    ),
    new_markdown_cell("The faces table: one row per detected face, with a stable id, its file and its label."),
    new_code_cell("store.table.head()"),
    new_code_cell("store.errors  # every file that could not be used, with the reason"),
    new_markdown_cell("A look at the faces, one row per person, from the thumbnails the store keeps."),
    new_code_cell(
        "import matplotlib.pyplot as plt\n"
        "from facecluster_widgets.pipeline.extract import thumbnail_of\n\n"
        "table = store.table[store.table.status == 'ok']\n"
        "people = table.groupby('label').head(6)\n"
        "labels = people['label'].unique()\n"
        "fig, axes = plt.subplots(len(labels), 6, figsize=(9, 1.6 * len(labels)), squeeze=False)\n"
        "for ax in axes.flat:\n"
        "    ax.axis('off')\n"
        "for r, label in enumerate(labels):\n"
        "    for c, image_id in enumerate(people.loc[people.label == label, 'image_id']):\n"
        "        axes[r, c].imshow(thumbnail_of(store, image_id))\n"
        "    axes[r, 0].set_title(label, fontsize=8, loc='left')\n"
        "plt.tight_layout()"
    ),
    new_markdown_cell(
        "## Explore the clusters\n\n"
        "The explorer clusters the faces with the method (DBSCAN marks faces in no dense group as noise, K-Means++\n"
        "then partitions the rest under the fused 2D + 3D distance) and shows the result on a map of the faces.\n\n"
        "- Move **ε**, **MinPts**, **λ** or **k**: the clustering reruns in the background (the map keeps its layout,\n"
        "  colours follow the clusters; grey crosses are faces in no cluster).\n"
        "- Hover a point to see the face; click or lasso to select faces everywhere; the panel below shows the\n"
        "  focused face's photo with landmarks, its standardisation steps and its 3D surface with the geodesic\n"
        "  paths the descriptor measures.\n"
        "- The tabs hold the cluster gallery, the corrections (merge, split, name, *not this person*, possible\n"
        "  matches) which are saved in the store, and the export."
    ),
    new_code_cell(
        "explorer = fc.ClusterExplorer(store)\n"
        "explorer"
    ),
    new_markdown_cell("Everything the widget shows is also there in code, e.g. the clustering and its scores:"),
    new_code_cell(
        "view = explorer.view\n"
        "print(f'{view.n_clusters} clusters, {view.n_noise} faces in none:', view.reason)\n"
        "explorer.session.metrics()"
    ),
]


METHOD = [
    md("""
        # The method, step by step, on real faces

        Each section takes one stage of the hybrid 2D + 3D method and shows what it does to the faces of the default
        dataset: **1** detection and landmarks, **2** CLAHE, **3** alignment, **4** the 3D mesh, **5** a geodesic
        path, **6** curvature histograms, **7** DBSCAN's noise, **8** how λ moves faces between clusters.
        Every number below is computed here, on these faces.
    """),
    SETUP,
    md("""
        We follow one face through the method: a labelled face with a 3D fit, turned a little away from the camera
        (so alignment has something to do).
    """),
    code("""
        yaw = faces.column("yaw").astype(float)
        candidates = [r for r in range(len(faces)) if faces.alpha(r) is not None and faces.labels[r] is not None
                      and faces.detection(r) is not None and faces.detection(r).points68 is not None]
        row = max(candidates, key=lambda r: abs(yaw[r]) if abs(yaw[r]) < 25 else -1)
        person = faces.labels[row]
        own = [r for r in candidates if faces.labels[r] == person]
        print(f"face {row}: {faces.file_names[row]} ({person}), yaw {yaw[row]:+.0f}°; {len(own)} photos of {person}")
    """),
    md("""
        ## 1 · Detection and landmarks

        The detector boxes the face (green); 68 landmarks (yellow) follow brows, eyes, nose, mouth and jaw; the 5
        alignment points (red: eyes, nose tip, mouth corners) drive the 2D standardisation.
    """),
    code("""
        detection, photo = faces.detection(row), faces.photo(row)
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.imshow(photo)
        x0, y0, x1, y1 = detection.box
        ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="lime"))
        ax.scatter(*detection.points68.T, s=5, c="gold", label="68 landmarks")
        ax.scatter(*detection.points5.T, s=25, c="red", label="5 alignment points")
        ax.legend(loc="lower right", fontsize=8)
        ax.axis("off");
    """),
    md("""
        ## 2 · What CLAHE does

        Contrast-limited adaptive histogram equalisation stretches contrast tile by tile (8 × 8 tiles), with a
        clip limit so noise in flat regions is not blown up. A face half in shadow keeps its shadow, but the
        shadowed half regains detail: the histograms spread out.
    """),
    code("""
        from facecluster_widgets.standardize import StandardiseConfig, standardise

        face = standardise(photo, detection.points5, StandardiseConfig())
        fig, axes = plt.subplots(2, 2, figsize=(7, 5), gridspec_kw={"height_ratios": [3, 1]})
        for col, (title, image) in enumerate((("aligned grey", face.aligned), ("after CLAHE", face.clahe))):
            axes[0, col].imshow(image, cmap="gray", vmin=0, vmax=255)
            axes[0, col].set_title(title)
            axes[0, col].axis("off")
            axes[1, col].hist(image.ravel(), bins=64, color="k")
            axes[1, col].set_yticks([])
        plt.tight_layout()
    """),
    md("On every face: local contrast (the standard deviation inside each 14 × 14 tile) before and after."),
    code("""
        def tile_contrast(image):
            tiles = image.astype(float).reshape(8, 14, 8, 14).swapaxes(1, 2).reshape(64, -1)
            spread, level = tiles.std(axis=1), tiles.mean(axis=1)
            return spread[level <= np.percentile(level, 25)].mean(), spread.std() / spread.mean()

        rows = []
        for r in candidates:
            f = standardise(faces.photo(r), faces.detection(r).points5, StandardiseConfig())
            (dark_before, cv_before), (dark_after, cv_after) = tile_contrast(f.aligned), tile_contrast(f.clahe)
            rows.append({"contrast in the darkest quarter": dark_before, "after CLAHE": dark_after,
                         "unevenness of contrast (CV)": cv_before, "after CLAHE ": cv_after})
        pd.DataFrame(rows).median().round(2).to_frame("median over faces")
    """),
    md("""
        ## 3 · What alignment does

        A similarity transform (scale, rotation, shift) moves the 5 points onto a fixed template, so the eyes and
        mouth of every face land on the same pixels. The average of one person's faces shows it: blurred when the
        faces are only cropped by their boxes, sharp when they are aligned (sharpness = variance of the
        Laplacian of the average).
    """),
    code("""
        import cv2
        from facecluster_widgets.standardize import crop_box

        aligned, boxed = [], []
        for r in own:
            rgb, det = faces.photo(r), faces.detection(r)
            aligned.append(standardise(rgb, det.points5, StandardiseConfig(clahe=False)).aligned.astype(float))
            crop, _ = crop_box(rgb, det.box, 112)
            boxed.append(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(float))
        fig, axes = plt.subplots(1, 2, figsize=(6, 3.4))
        for ax, (title, stack) in zip(axes, (("box crops only", boxed), ("aligned", aligned))):
            mean = np.mean(stack, axis=0)
            ax.imshow(mean, cmap="gray")
            ax.set_title(f"{title}\\nsharpness {cv2.Laplacian(mean, cv2.CV_64F).var():.1f}")
            ax.axis("off")
        fig.suptitle(f"average of {len(own)} photos of {person}");
    """),
    md("""
        ## 4 · The mesh

        mediapipe's 468-vertex mesh, fitted on the face crop, gives the head pose (yaw, pitch, roll). The 3D
        descriptors then come from a morphable model fitted to the 68 landmarks: its identity coefficients alone
        give a face shape with expression and pose removed. Below: mediapipe's vertices on the photo, then that
        identity shape in 3D, coloured by mean curvature (blue concave, red convex), with the geodesic paths of the
        descriptor in black. Drag to turn it.
    """),
    code("""
        vertices = faces.mesh_vertices(row)
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.imshow(photo)
        ax.scatter(vertices[:, 0], vertices[:, 1], s=1, c=vertices[:, 2], cmap="viridis")
        ax.set_xlim(x0 - 20, x1 + 20)
        ax.set_ylim(y1 + 30, y0 - 30)
        ax.axis("off")
        print("head pose:", ", ".join(f"{k} {faces.column(k)[row]:+.0f}°" for k in ("yaw", "pitch", "roll")))
    """),
    code("""
        viewer = fc.MeshViewer(faces, row)
        viewer
    """),
    md("""
        ## 5 · A geodesic path

        A geodesic is the shortest path *on the surface*. From the top of the nose to the chin it climbs over the
        nose and lips, so it is longer than the straight line through the face; how much longer depends on the
        face's relief, which is what the `geodesic` block measures (20 such paths, each divided by the straight
        distance between the outer eye corners so head size drops out).
    """),
    code("""
        extractor = viewer.extractor
        shape = extractor.identity_shape(faces.alpha(row))
        pair = ("nose_bridge", "chin")
        path = extractor.geodesic_paths(shape)[pair]
        a, b = (extractor.point_vertices[p] for p in pair)
        straight = float(np.linalg.norm(shape[a] - shape[b]))
        along = float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum())
        print(f"{pair[0]} → {pair[1]}: straight {straight:.2f} cm, along the surface {along:.2f} cm "
              f"({along / straight - 1:+.1%})")
        fig, ax = plt.subplots(figsize=(3.5, 4.5))
        ax.scatter(shape[:, 2], shape[:, 1], s=0.2, c="lightgrey")
        ax.plot(path[:, 2], path[:, 1], "k-", lw=2, label="geodesic")
        ax.plot(shape[[a, b], 2], shape[[a, b], 1], "r--", label="straight line")
        ax.set_aspect("equal")
        ax.set_xlabel("depth z (cm)")
        ax.set_ylabel("height y (cm)")
        ax.legend(fontsize=8)
        ax.set_title("side view");
    """),
    md("""
        ## 6 · Curvature histograms

        The `curvature` block is, for four regions (forehead, both cheeks, nose bridge), the share of the region's
        area in each bin of mean curvature and of Gaussian curvature. Two photos of one person should give similar
        bars, another person different ones: below, two photos of our person and one of someone else.
    """),
    code("""
        from facecluster_widgets.viz.charts import curvature_histograms

        other = next(r for r in candidates if faces.labels[r] != person)
        block = faces.features["curvature"]
        curvature_histograms({faces.file_names[own[0]]: block[own[0]], faces.file_names[own[1]]: block[own[1]],
                              faces.file_names[other]: block[other]})
    """),
    md("How much identity does the block carry on these faces? Average distance between two faces of one person, "
       "and of two different people (a ratio near 1 means the block hardly tells people apart):"),
    code("""
        from scipy.spatial.distance import pdist, squareform

        labelled = np.array(candidates)
        names = faces.labels[labelled].astype(str)
        same = names[:, None] == names[None, :]
        off = ~np.eye(len(labelled), dtype=bool)
        for block_name in ("2d", "curvature", "geodesic", "shape"):
            D = squareform(pdist(faces.features[block_name][labelled]))
            print(f"{block_name:>9}: within one person {D[same & off].mean():.3f}, between people "
                  f"{D[~same].mean():.3f}, ratio {D[~same].mean() / D[same & off].mean():.2f}")
    """),
    md("""
        ## 7 · DBSCAN's noise

        Stage 1 of the clustering: a face with fewer than MinPts faces within ε (on the fused distance) that is not
        reachable from a dense face is *noise*. Noise faces skip stage 2 and stay out of every cluster: odd photos,
        people seen once, bad detections. A larger ε lets more faces in.
    """),
    code("""
        view = session.view
        print(view.reason)
        default_eps, default_lam = view.params["eps"], view.params["lam"]
        table = []
        for eps in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0):
            v = session.update(eps=eps)
            table.append({"ε": eps, "clusters": v.n_clusters, "noise faces": v.n_noise,
                          "ARI": session.metrics(v)["ari"]})
        session.update(eps=default_eps)
        pd.DataFrame(table).set_index("ε").round(3)
    """),
    code("""
        noise = session.unknown_pool()
        print(f"{len(noise)} noise faces at ε = {default_eps}, nearest to a cluster first")
        shown = max(len(noise[:8]), 1)
        fig, axes = plt.subplots(1, shown, figsize=(1.4 * shown, 1.8), squeeze=False)
        for ax, r in zip(axes[0], noise[:8]):
            ax.imshow(faces.thumbnail(r))
            ax.set_title(str(faces.labels[r] or "?")[:12], fontsize=7)
        for ax in axes[0]:
            ax.axis("off")
    """),
    md("""
        ## 8 · How λ moves faces between clusters

        λ is the weight of the 2D term in the fused distance (1 = 2D embedding only, 0 = 3D descriptors only). The
        map below is drawn once; each λ recolours it. Clusters are renamed to match the default λ's as closely as
        possible, so a face that changes colour really changed cluster.
    """),
    code("""
        from facecluster_widgets.cluster import align_labels
        from facecluster_widgets.metrics import ari

        base = session.update(lam=default_lam).labels.copy()
        xy = session.projection()
        known = np.array([t is not None for t in faces.labels])
        rows = []
        for lam in (0.0, 0.25, 0.5, 0.75, default_lam, 1.0):
            labels = align_labels(base, session.update(lam=lam).labels)
            rows.append({"λ": lam, "clusters": len(set(labels) - {-1}), "noise": int((labels < 0).sum()),
                         "faces moved vs default λ": int((labels != base).sum()),
                         "ARI": ari(faces.labels[known].astype(str), labels[known])})
        pd.DataFrame(rows).set_index("λ").round(3)
    """),
    code("""
        from plotly.subplots import make_subplots
        from facecluster_widgets.viz.scatter import colouring

        low = align_labels(base, session.update(lam=0.5).labels)
        session.update(lam=default_lam)
        fig = make_subplots(rows=1, cols=2, subplot_titles=(f"λ = {default_lam}", "λ = 0.5 (rings: moved faces)"))
        for col, labels in ((1, base), (2, low)):
            fig.add_scattergl(x=xy[:, 0], y=xy[:, 1], mode="markers", row=1, col=col, showlegend=False,
                              marker={**colouring(labels).marker(), "size": 7,
                                      "symbol": np.where(labels < 0, "x", "circle")})
        moved = np.flatnonzero(low != base)
        fig.add_scattergl(x=xy[moved, 0], y=xy[moved, 1], mode="markers", row=1, col=2, showlegend=False,
                          marker={"size": 16, "color": "rgba(0,0,0,0)", "line": {"width": 2, "color": "black"}})
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        fig.update_layout(height=380, margin={"l": 10, "r": 10, "t": 40, "b": 10})
        fig
    """),
    md("""
        ## All of it for any face

        `PipelineStepper` walks one face through every stage above, with the same pictures; `ClusterExplorer`
        (the quickstart) does the clustering side interactively.
    """),
    code("""
        fc.PipelineStepper(faces, row, session=session)
    """),
]

TUNING = [
    md("""
        # Tuning: sweeps and the comparison with other methods

        How sensitive is the method to ε and λ, does a label-free score (the silhouette) point where the true
        identities do (ARI), and how does the full method compare with 2D-only, 3D-only and the usual face
        clustering methods on the same features (the shape of the method's Table 2)?
    """),
    SETUP,
    md("""
        ## ε × λ

        Each cell clusters all faces at one (ε, λ), reusing the cached per-block distances (so a whole grid takes
        seconds). Pick the score to show; the star marks the best cell; click a cell to move the explorer below
        to that ε and λ (its own session: nothing here is saved in the store).
    """),
    code("""
        explorer = fc.ClusterExplorer(None, session=fc.ClusterSession.from_store(store, edits=fc.EditLog(),
                                                                                persist=False), mesh=False)
        sweep = fc.ParameterSweep(session, explorer=explorer, steps=(8, 6), background=False, run=True)
        sweep
    """),
    code("""
        explorer
    """),
    md("""
        The label-free silhouette next to ARI (which needs the true identities): do they agree on where to go?
        Read the silhouette with the noise share: it scores the clustered faces only, so a tiny ε that leaves
        most faces out as noise can look excellent.
    """),
    code("""
        from facecluster_widgets.viz.charts import sweep_heatmap

        grid = sweep.frame
        best_sil, best_ari = grid.loc[grid.silhouette.idxmax()], grid.loc[grid.ari.idxmax()]
        print(f"best silhouette {best_sil.silhouette:.3f} at ε {best_sil.eps:.2f}, λ {best_sil.lam:.2f} "
              f"(ARI there {best_sil.ari:.3f})")
        print(f"best ARI {best_ari.ari:.3f} at ε {best_ari.eps:.2f}, λ {best_ari.lam:.2f}")
        sweep_heatmap(grid, "silhouette", height=320)
    """),
    code("""
        sweep_heatmap(grid, "ari", height=320)
    """),
    md("""
        ## MinPts

        DBSCAN's density threshold: how many faces within ε make a face *core*. Higher MinPts demands denser groups
        and leaves more faces as noise.
    """),
    code("""
        default = dict(session.view.params)
        rows = []
        for min_samples in (2, 3, 4, 6, 8):
            for eps in (0.4, 0.6, 0.8):
                v = session.update(min_samples=min_samples, eps=eps)
                rows.append({"MinPts": min_samples, "ε": eps, "clusters": v.n_clusters, "noise": v.n_noise,
                             "ARI": session.metrics(v)["ari"]})
        session.update(**default)
        pd.DataFrame(rows).pivot(index="MinPts", columns="ε", values=["clusters", "noise", "ARI"]).round(3)
    """),
    md("""
        ## The comparison (Table 2)

        `evaluate` runs the full method and its ablations (2D only, 3D only, late fusion) and the usual face
        clustering methods (DBSCAN, HDBSCAN, agglomerative, Chinese Whispers, K-Means given the true number of
        people) on the same features, scores them against the identities, and sweeps λ for the full method.
        Defaults are fixed once for every dataset: nothing here is tuned on these labels.
    """),
    code("""
        evaluation = fc.evaluate(store)  # λ values where DBSCAN finds only noise are named once, in the notes
        evaluation.table.round(3)
    """),
    code("""
        from facecluster_widgets.viz.charts import lam_curve

        lam_curve(evaluation.lam_sweep, ("ari", "silhouette", "noise_fraction"), marker=default["lam"])
    """),
    code("""
        d = evaluation.dbscan
        print(f"DBSCAN stage: {d['noise_fraction']:.1%} of faces left as noise; silhouette with it "
              f"{d['silhouette_hybrid']:.3f}, K-Means++ alone on every face {d['silhouette_kmeans']:.3f}")
        for note in evaluation.notes:
            print("-", note)
    """),
]


def write(name: str, cells: list) -> None:
    # ids from the position, not random: regenerating leaves unchanged cells unchanged in git
    cells = [{**cell, "id": f"{name.split('_')[0]}-{i:02d}"} for i, cell in enumerate(cells)]
    nb = new_notebook(cells=[nbformat.from_dict(cell) for cell in cells], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
        "language_info": {"name": "python"},
    })
    nbformat.validate(nb)
    nbformat.write(nb, HERE / name)


if __name__ == "__main__":
    write("01_quickstart.ipynb", QUICKSTART)
    write("02_method.ipynb", METHOD)
    write("03_tuning.ipynb", TUNING)
