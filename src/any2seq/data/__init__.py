"""The data pipeline: text files -> subword ids -> cached token arrays (or in-memory items of any
modality) -> padded, bucketed batches."""
from any2seq.data.batching import Batch, BatchStream, Items, collate, collate_items, make_batches
from any2seq.data.cache import TokenArray, encode_cached, write_token_array
from any2seq.data.text import check_parallel, count_lines, plain_or_gz, read_lines
from any2seq.data.tokenizer import Tokenizer, train_tokenizer

__all__ = [
    "Batch", "BatchStream", "Items", "collate", "collate_items", "make_batches",
    "TokenArray", "encode_cached", "write_token_array",
    "check_parallel", "count_lines", "plain_or_gz", "read_lines",
    "Tokenizer", "train_tokenizer",
]
