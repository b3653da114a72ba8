"""Write the notebooks from their cell sources, so they stay reviewable as plain text and carry no outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent.parent / "notebooks"

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
        "from facecluster_widgets.pipeline import thumbnail_of\n\n"
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
]


def write(name: str, cells: list) -> None:
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
        "language_info": {"name": "python"},
    })
    nbformat.validate(nb)
    nbformat.write(nb, HERE / name)


if __name__ == "__main__":
    write("01_quickstart.ipynb", QUICKSTART)
