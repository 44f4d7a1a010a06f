"""Fundus CBR: image embeddings for similar-case retrieval of diabetic-retinopathy photographs.

Mirror attention and the fine triplet loss follow Fang et al., "Deep metric learning with mirror attention and fine
triplet loss for fundus image retrieval in ophthalmology", Biomedical Signal Processing and Control 80 (2023).
"""

MODEL_VERSION = "0.1.0"
