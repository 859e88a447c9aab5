"""The reserved ids of the arrays the featurizers write and the torch modules read.

Shared by ml.featurize (Docs -> ids) and ml.modules (ids -> tensors) without either
importing the other: this module imports nothing.
"""

# character ids: padding, unknown character, the separator between a stream's words
CHAR_PAD, CHAR_UNK, CHAR_SEP = 0, 1, 2
N_CHAR_SPECIALS = 3
# word ids: padding, unknown word
WORD_PAD, WORD_UNK = 0, 1
N_WORD_SPECIALS = 2
# the co-trained LM's targets: unknown word, and positions that predict nothing
LM_UNK = 0
LM_IGNORE = -100
# a word table's width when neither the config nor the pipeline's vectors give one
DEFAULT_WORD_WIDTH = 100
