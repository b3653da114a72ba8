"""3D face reconstruction from one photo: mediapipe's face mesh and its topology."""
