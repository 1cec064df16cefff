"""Representation diagnostics: CSLS retrieval, contextual word vectors, word retrieval (Cao et al., 2020, §4) and
related-vs-unrelated word-pair distances (Efimov et al., 2022). Import the submodules directly."""
