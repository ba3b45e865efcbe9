"""The local web page (``facelab serve``) and the webcam/video view (``facelab webcam``)."""
