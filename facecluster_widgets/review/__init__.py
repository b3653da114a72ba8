"""What a person does with a clustering, in plain Python the widgets sit on: the collection of faces, the
session (fit, metrics, gallery, matches, projection, sweeps), corrections and their replay, export."""
