"""The provider's own bulk engine: OpenAI's Batch API (``--via openai-batch``), and its line formats for
offline engines such as ``vllm run-batch`` (``--export-requests``/``--import-results``).

Beside the online batch (:mod:`voorbeelden.batch.runner`), not instead of it: the same input, the same
``--out`` result lines and resume keys, the same request bodies and parser. Modules, one job each: ``lines``
(request and output line formats, a term's result), ``state`` (the state file beside ``--out``), ``remote``
(the SDK's files/batches calls), ``collect`` (what each pending line has come to), ``run`` (the resumable
loop), ``offline`` (export/import), ``cli`` (the options of ``voorbeelden batch``).
"""
