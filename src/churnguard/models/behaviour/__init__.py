"""The behaviour model: event-sequence encoders, self-supervised pretraining, churn fine-tuning.

* :mod:`~churnguard.models.behaviour.encoders` -- token embedding with explicit time encoding,
  GRU and transformer encoders;
* :mod:`~churnguard.models.behaviour.pretrain` -- CoLES contrastive pretraining without labels
  (plus masked-event modelling as an option): :func:`pretrain`;
* :mod:`~churnguard.models.behaviour.model` -- the churn models ``behaviour`` (fine-tuned
  encoder + head; from scratch without pretraining) and ``behaviour+gbdt`` (frozen customer
  embeddings added to the gradient-boosted trees' features);
* :mod:`~churnguard.models.behaviour.inference` -- scoring on the CPU: batches by length,
  threads, and the optional ONNX Runtime path (:func:`export_onnx`, :class:`OnnxNetwork`).
"""
