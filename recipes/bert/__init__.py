"""BERT pre-training with LAMB (You et al. 2020, Sec. 4): text -> WordPiece -> TFRecords
(``create_pretraining_data``), the encoder with masked-LM and next-sentence heads, and the
two-phase training program."""
