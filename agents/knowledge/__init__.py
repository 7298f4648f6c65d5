"""The knowledge base: a project's documents, extracted (`extract.py`), chunked (`chunking.py`), indexed for lexical
and semantic search (`index.py`, `search.py`, embeddings through `embeddings.py`), processed off the request path
(`tasks.py`, `services.py`)."""
