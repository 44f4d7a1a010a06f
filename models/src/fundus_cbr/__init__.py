"""Fundus CBR: image embeddings for similar-case retrieval of diabetic-retinopathy photographs.

Mirror attention and the fine triplet loss follow Fang et al., "Deep metric learning with mirror attention and fine
triplet loss for fundus image retrieval in ophthalmology", Biomedical Signal Processing and Control 80 (2023).
"""

# The release; exports append "+w<hash of the weights>" (export.versioned), so retrained weights get a new version.
MODEL_VERSION = "0.5.0"
