"""Built-in embedding dedup: sentence-transformers embeddings, an exact FAISS inner-product index."""
