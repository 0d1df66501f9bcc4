"""Whole-image inference: sliding windows, the predict/evaluate command, deployment folders.

Two sides, kept apart so a deployment machine needs no torch:

* torch-free (numpy, scipy, scikit-image, Pillow, nibabel, onnxruntime): ``windows``,
  ``settings``, ``onnx_network``, ``nuclei``, ``cardiac``, ``readers``, ``predict``;
* torch: ``sliding_window``, ``modes``, ``torch_network``, ``deployment``.

This package imports nothing on its own, so importing a torch-free module never loads torch.
"""
