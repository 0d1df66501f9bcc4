"""Whole-image inference: sliding windows, the predict/evaluate command, deployment folders.

Two sides, kept apart so a deployment machine needs no torch:

* torch-free (numpy, scipy, scikit-image, Pillow, nibabel, tifffile, onnxruntime):
  ``windows``, ``settings``, ``onnx_network``, ``nuclei``, ``cardiac``, ``inputs``, ``files``,
  ``report``, ``models`` (its torch branches import torch when taken), ``predict``;
* torch: ``sliding_window``, ``modes``, ``torch_network``.

This package imports nothing on its own, so importing a torch-free module never loads torch.
"""
