"""PII detection with Presidio: recognizers, the engine, entity replacement and the spaCy-free tokenizer."""
