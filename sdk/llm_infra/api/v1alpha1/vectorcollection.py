"""VectorCollection: a Qdrant collection declared as a resource (short name `vc`).

Reconciled by the operator into a collection in a Qdrant server (through
qdrant-client) or in the control plane's embedded Qdrant core (qdrant-edge).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from llm_infra.api._model import ApiModel, KeyedBy, Rule, UniqueItems
from llm_infra.api._resource import CrdInfo, PrinterColumn, Resource, ResourceStatus
from llm_infra.api.v1alpha1._common import HTTP_URL, Name, SecretKeyRef

Distance = Literal["Cosine", "Dot", "Euclid", "Manhattan"]
Datatype = Literal["float32", "float16", "uint8"]
PayloadType = Literal["keyword", "integer", "float", "bool", "geo", "datetime", "uuid", "text"]
Tier = Literal["hot", "warm", "cold"]
Dimensions = Annotated[int, Field(ge=1, le=65536)]
# Qdrant's payload paths: dotted keys, each may index an array (tags[] or tags[0]).
PAYLOAD_PATH = r"^[A-Za-z_][A-Za-z0-9_-]*(\[[0-9]*\])?(\.[A-Za-z_][A-Za-z0-9_-]*(\[[0-9]*\])?)*$"


class QdrantBackend(ApiModel):
    """A Qdrant server or cluster reached over the network."""

    url: str = Field(pattern=HTTP_URL, max_length=2048)
    """Base URL of the Qdrant REST API, e.g. http://qdrant.qdrant.svc:6333."""
    api_key_secret_ref: SecretKeyRef | None = None
    """Secret key holding the API key, if the server requires one."""
    grpc: bool = False
    """Talk gRPC (port 6334) instead of REST."""


class EmbeddedBackend(ApiModel):
    """The Qdrant core embedded in the control plane (qdrant-edge); one machine, no replicas."""


class Backend(ApiModel):
    """Where the collection lives: exactly one of qdrant or embedded. Which one is immutable."""

    rules: ClassVar = (
        Rule(
            cel="has(self.qdrant) != has(self.embedded)",
            message="set exactly one of qdrant or embedded",
            check=lambda b: (b.qdrant is None) != (b.embedded is None),
        ),
        Rule(
            cel="has(self.qdrant) == has(oldSelf.qdrant)"
            " && has(self.embedded) == has(oldSelf.embedded)",
            message="the backend (qdrant or embedded) is immutable: the points stay where they are;"
            " to move them, create a new VectorCollection on the other backend and move an alias"
            " to it",
            transition=True,
        ),
    )

    qdrant: QdrantBackend | None = None
    """A Qdrant server or cluster."""
    embedded: EmbeddedBackend | None = None
    """The embedded Qdrant core of the control plane."""


class VectorParams(ApiModel):
    """Shape of the vectors stored in the collection; size and distance are immutable."""

    rules: ClassVar = (
        Rule(
            cel="self.size == oldSelf.size",
            message="size is immutable: the collection's points have this many dimensions; for"
            " another size, create a new VectorCollection, fill it, and move an alias to it",
            field=".size",
            transition=True,
        ),
        Rule(
            cel="!has(oldSelf.distance)"
            " || (has(self.distance) && self.distance == oldSelf.distance)",
            message="distance is immutable: the index was built for it; for another distance,"
            " create a new VectorCollection, fill it, and move an alias to it",
            field=".distance",
            transition=True,
        ),
    )

    size: Dimensions
    """Number of dimensions; must equal the embedding model's. Immutable."""
    distance: Distance = "Cosine"
    """Similarity measure. Immutable."""
    datatype: Datatype = "float32"
    """Storage type of each component."""
    on_disk: bool = False
    """Keep vectors on disk (memory-mapped) instead of in RAM."""


class NamedVectorParams(VectorParams):
    """One named vector of a collection that stores several per point."""

    name: Name
    """Name of the vector, as clients query it."""


class EmbeddingModel(ApiModel):
    """The model that produces the vectors; clients read it to embed queries the same way."""

    name: str = Field(min_length=1, max_length=256)
    """Model name, e.g. sentence-transformers/all-MiniLM-L6-v2."""
    version: str | None = Field(None, max_length=128)
    """Model version or revision."""
    dimensions: Dimensions
    """Output dimensions of the model."""


class HnswConfig(ApiModel):
    """HNSW index parameters."""

    m: int = Field(16, ge=0, le=128)
    """Edges per node; 0 disables the graph (payload-filtered search only)."""
    ef_construct: int = Field(100, ge=4, le=4096)
    """Candidates kept while building; higher is slower to build, better recall."""
    full_scan_threshold: int = Field(10000, ge=0)
    """Below this many KB of vectors a search scans instead of walking the graph."""


class SearchDefaults(ApiModel):
    """Search parameters published to clients as their defaults."""

    hnsw_ef: int | None = Field(None, ge=1, le=4096)
    """Candidates kept while searching; higher is slower, better recall."""
    exact: bool = False
    """Search exhaustively instead of through the index."""
    rescore: bool | None = None
    """Rescore quantized candidates with the original vectors."""
    oversampling: float | None = Field(None, ge=1.0, le=16.0)
    """Fetch this many times more quantized candidates before rescoring."""


class ScalarQuantization(ApiModel):
    """int8 scalar quantization: 4x less memory, recall close to float32 with rescoring."""

    type: Literal["int8"] = "int8"
    """Quantized type."""
    quantile: float = Field(0.99, ge=0.5, le=1.0)
    """Quantile of values used to compute the quantization bounds."""
    always_ram: bool = True
    """Keep quantized vectors in RAM even when the originals are on disk."""


class BinaryQuantization(ApiModel):
    """1-bit quantization: 32x less memory; test recall on your embeddings before using it."""

    always_ram: bool = True
    """Keep quantized vectors in RAM."""


class ProductQuantization(ApiModel):
    """Product quantization: highest compression, lowest recall."""

    compression: Literal["x4", "x8", "x16", "x32", "x64"] = "x16"
    """Compression ratio."""
    always_ram: bool = True
    """Keep quantized vectors in RAM."""


class Quantization(ApiModel):
    """Explicit quantization: exactly one of scalar, binary or product."""

    rules: ClassVar = (
        Rule(
            cel="[has(self.scalar), has(self.binary), has(self.product)].filter(x, x).size() == 1",
            message="set exactly one of scalar, binary or product",
            check=lambda q: sum(x is not None for x in (q.scalar, q.binary, q.product)) == 1,
        ),
    )

    scalar: ScalarQuantization | None = None
    """int8 scalar quantization."""
    binary: BinaryQuantization | None = None
    """Binary quantization."""
    product: ProductQuantization | None = None
    """Product quantization."""


class PayloadIndex(ApiModel):
    """An index on a payload field; filter only on indexed fields (unindexed filters scan)."""

    field: str = Field(min_length=1, max_length=256, pattern=PAYLOAD_PATH)
    """Payload field (a JSON path such as metadata.lang, or tags[] for each item of an array)."""
    type: PayloadType
    """Index type."""


class VectorCollectionSpec(ApiModel):
    """Desired state of a vector collection."""

    rules: ClassVar = (
        Rule(
            cel="has(self.vectors) != (has(self.namedVectors) && size(self.namedVectors) > 0)",
            message="set exactly one of vectors or namedVectors",
            field=".vectors",
            check=lambda s: (s.vectors is not None) != (len(s.named_vectors) > 0),
        ),
        Rule(
            cel="!has(self.embeddingModel) || !has(self.vectors)"
            " || self.embeddingModel.dimensions == self.vectors.size",
            message="embeddingModel.dimensions must equal vectors.size",
            field=".embeddingModel.dimensions",
            check=lambda s: (
                s.embedding_model is None
                or s.vectors is None
                or s.embedding_model.dimensions == s.vectors.size
            ),
        ),
        Rule(
            cel="!(has(self.tier) && has(self.quantization))",
            message="set tier or quantization, not both",
            field=".quantization",
            check=lambda s: s.tier is None or s.quantization is None,
        ),
        Rule(
            cel="!has(self.collectionName) || !has(self.aliases)"
            " || !(self.collectionName in self.aliases)",
            message="an alias must not be the collection's own name: remove it from aliases",
            field=".aliases",
            check=lambda s: s.collection_name not in s.aliases,
        ),
        Rule(
            cel="!has(self.backend) || !has(self.backend.embedded)"
            " || ((!has(self.shards) || self.shards == 1)"
            " && (!has(self.replicas) || self.replicas == 1))",
            message="shards and replicas apply to a Qdrant server only: the embedded core keeps"
            " one shard and one copy; remove them",
            field=".shards",
            check=lambda s: (
                s.backend is None or s.backend.embedded is None or (s.shards, s.replicas) == (1, 1)
            ),
        ),
        Rule(
            cel="has(self.collectionName) == has(oldSelf.collectionName)"
            " && (!has(self.collectionName) || self.collectionName == oldSelf.collectionName)",
            message="collectionName is immutable: the collection keeps its engine name; to reach"
            " it under another name add an alias, or create a new VectorCollection",
            field=".collectionName",
            transition=True,
        ),
    )

    backend: Backend | None = None
    """Where the collection lives; the operator's default backend when unset."""
    collection_name: str | None = Field(
        None, pattern=r"^[a-zA-Z0-9_-][a-zA-Z0-9_.-]*$", max_length=255
    )
    """Name in the engine, chosen within the resource's namespace only. Unset: <namespace>.<name>
    on a Qdrant server (a hashed form past 255 characters), the resource's name in the embedded
    core, where each namespace has its own collections. Immutable."""
    vectors: VectorParams | None = None
    """The collection's single unnamed vector."""
    named_vectors: Annotated[list[NamedVectorParams], KeyedBy("name"), Field(max_length=16)] = (
        Field(default_factory=list)
    )
    """Several named vectors per point, instead of `vectors`."""
    embedding_model: EmbeddingModel | None = None
    """The model that produces the vectors."""
    hnsw: HnswConfig = Field(default_factory=HnswConfig)
    """HNSW index parameters."""
    search: SearchDefaults = Field(default_factory=SearchDefaults)
    """Search defaults published to clients."""
    tier: Tier | None = None
    """A storage profile: hot (float32 in RAM), warm (int8 with rescore), cold (on disk, binary
    with rescore). Mutually exclusive with quantization."""
    quantization: Quantization | None = None
    """Explicit quantization, instead of a tier."""
    payload_indexes: Annotated[list[PayloadIndex], KeyedBy("field"), Field(max_length=64)] = Field(
        default_factory=list
    )
    """Payload fields to index, one entry per field."""
    shards: int = Field(1, ge=1, le=1024)
    """Number of shards (Qdrant server only: the embedded backend refuses any but 1)."""
    replicas: int = Field(1, ge=1, le=16)
    """Copies of each shard (Qdrant server only: the embedded backend refuses any but 1)."""
    aliases: Annotated[
        list[Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]+$", max_length=255)]],
        Field(max_length=16),
        UniqueItems(),
    ] = Field(default_factory=list)
    """Other names clients may use for the collection; never the collection's own name."""
    deletion_policy: Literal["Retain", "Delete"] = "Retain"
    """What happens to the Qdrant collection when this resource is deleted."""

    def engine_collection(self, namespace: str, name: str) -> str:
        """The collection's name in the engine: `collectionName`, else the default for the name."""
        return self.collection_name or default_collection_name(namespace, name)


def default_collection_name(namespace: str, name: str) -> str:
    """``<namespace>.<name>``: the engine collection of a VectorCollection that names none.

    Injective: a namespace is a DNS label (no dot), so the first dot splits it off.
    Qdrant allows 255 characters; a longer pair becomes
    ``<namespace>.<name prefix>_<32 hex of sha256("namespace/name")>``, and as no
    DNS name holds ``_``, the two forms never meet. The one place this default is
    written; the operator, the control plane and standalone mode all ask
    `VectorCollectionSpec.engine_collection`.
    """
    plain = f"{namespace}.{name}"
    if len(plain) <= MAX_COLLECTION_NAME:
        return plain
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:_DIGEST_CHARS]
    prefix = name[: MAX_COLLECTION_NAME - len(namespace) - 2 - _DIGEST_CHARS]
    return f"{namespace}.{prefix}_{digest}"


MAX_COLLECTION_NAME = 255
"""Qdrant's limit on a collection name (and a file name's on most file systems)."""
_DIGEST_CHARS = 32


class VectorCollectionStatus(ResourceStatus):
    """Observed state of a vector collection."""

    collection_name: str | None = None
    """Name of the collection in Qdrant."""
    backend: Literal["qdrant", "embedded"] | None = None
    """The backend in use."""
    points_count: int | None = Field(None, ge=0)
    """Points stored."""
    indexed_vectors_count: int | None = Field(None, ge=0)
    """Vectors in the HNSW index."""
    search: SearchDefaults | None = None
    """Search defaults clients should use (spec.search as applied)."""
    embedding_model: EmbeddingModel | None = None
    """The model clients should embed queries with (spec.embeddingModel as applied)."""


class VectorCollection(Resource):
    """A vector collection in Qdrant, reconciled by the llm-infra operator."""

    rules: ClassVar = (
        # In the embedded core the collection is named after the resource (spec's rules cannot
        # read metadata); on a Qdrant server the default <namespace>.<name> holds a dot, which
        # no alias does.
        Rule(
            cel="has(self.spec.collectionName) || !has(self.spec.backend)"
            " || !has(self.spec.backend.embedded) || !has(self.spec.aliases)"
            " || !(self.metadata.name in self.spec.aliases)",
            message="an alias must not be the collection's own name (in the embedded backend,"
            " metadata.name): remove it from spec.aliases",
            field=".spec.aliases",
            check=lambda vc: (
                vc.spec.collection_name is not None
                or vc.spec.backend is None
                or vc.spec.backend.embedded is None
                or vc.metadata.name not in vc.spec.aliases
            ),
        ),
    )

    crd: ClassVar = CrdInfo(
        kind="VectorCollection",
        plural="vectorcollections",
        short_names=("vc",),
        version="v1alpha1",
        description="A vector collection in Qdrant (server or embedded), managed by llm-infra.",
        columns=(
            PrinterColumn("Dims", ".spec.vectors.size", type="integer", description="Vector size"),
            PrinterColumn("Backend", ".status.backend", description="qdrant or embedded"),
            PrinterColumn("Points", ".status.pointsCount", type="integer", description="Points"),
        ),
    )

    spec: VectorCollectionSpec
    """Desired state."""
    status: VectorCollectionStatus | None = None
    """Observed state, written by the operator."""


__all__ = [
    "MAX_COLLECTION_NAME",
    "VectorCollection",
    "VectorCollectionSpec",
    "VectorCollectionStatus",
    "default_collection_name",
]
