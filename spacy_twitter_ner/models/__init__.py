"""The tagger's registered thinc architectures: ``tagger.py`` chains ``features.py`` (with the
frozen sources of ``knowledge/``), ``encoder.py`` and a decoder (``crf.py``, ``softmax.py``)
whose ``TagScores`` (``scores.py``) own their loss and decoding; ``ensemble.py`` averages
trained taggers. The pure PyTorch parts are ``torch_modules.py`` and ``torch_crf.py``, wrapped
for thinc by ``pytorch_shim.py`` (thinc's wrapper, with the optimizer's weight averages)."""
