"""Document trees (``index.tree``): builders that turn a document and its chunks into a :class:`~ragkit.types.DocTree`.

- ``headings`` (:mod:`ragkit.trees.headings`): sections from the loaders' heading spans, chunks as leaves;
- ``llm`` (:mod:`ragkit.trees.llm`): ToM's prompted Hierarchical Semantic Parser, leaves aligned back to
  verbatim document spans;
- ``cluster`` (:mod:`ragkit.trees.cluster`): RAPTOR-style bottom-up summaries over another builder's top nodes.

Every builder implements ``build(doc, chunks) -> DocTree``; leaves are spans of ``doc.text``.
"""
