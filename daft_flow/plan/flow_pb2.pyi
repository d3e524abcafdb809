from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DataType(_message.Message):
    __slots__ = ("kind", "element", "dimension", "optional")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ELEMENT_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    OPTIONAL_FIELD_NUMBER: _ClassVar[int]
    kind: str
    element: DataType
    dimension: int
    optional: bool
    def __init__(self, kind: _Optional[str] = ..., element: _Optional[_Union[DataType, _Mapping]] = ..., dimension: _Optional[int] = ..., optional: _Optional[bool] = ...) -> None: ...

class PythonObject(_message.Message):
    __slots__ = ("module", "qualname", "pickled", "fingerprint")
    MODULE_FIELD_NUMBER: _ClassVar[int]
    QUALNAME_FIELD_NUMBER: _ClassVar[int]
    PICKLED_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    module: str
    qualname: str
    pickled: bytes
    fingerprint: str
    def __init__(self, module: _Optional[str] = ..., qualname: _Optional[str] = ..., pickled: _Optional[bytes] = ..., fingerprint: _Optional[str] = ...) -> None: ...

class PythonUdf(_message.Message):
    __slots__ = ("fn_ref", "mode", "max_in_flight", "batch_size", "batch_arg_kind", "builtin", "builtin_detail", "version", "expanding", "concurrency", "gpus")
    class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ROW: _ClassVar[PythonUdf.Mode]
        BATCH: _ClassVar[PythonUdf.Mode]
        ASYNC: _ClassVar[PythonUdf.Mode]
    ROW: PythonUdf.Mode
    BATCH: PythonUdf.Mode
    ASYNC: PythonUdf.Mode
    FN_REF_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    BATCH_ARG_KIND_FIELD_NUMBER: _ClassVar[int]
    BUILTIN_FIELD_NUMBER: _ClassVar[int]
    BUILTIN_DETAIL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EXPANDING_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    fn_ref: int
    mode: PythonUdf.Mode
    max_in_flight: int
    batch_size: int
    batch_arg_kind: str
    builtin: str
    builtin_detail: str
    version: str
    expanding: bool
    concurrency: int
    gpus: float
    def __init__(self, fn_ref: _Optional[int] = ..., mode: _Optional[_Union[PythonUdf.Mode, str]] = ..., max_in_flight: _Optional[int] = ..., batch_size: _Optional[int] = ..., batch_arg_kind: _Optional[str] = ..., builtin: _Optional[str] = ..., builtin_detail: _Optional[str] = ..., version: _Optional[str] = ..., expanding: _Optional[bool] = ..., concurrency: _Optional[int] = ..., gpus: _Optional[float] = ...) -> None: ...

class LevelInput(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AsList(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LevelAttribute(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class Tokenize(_message.Message):
    __slots__ = ("tokenizer", "add_special_tokens", "tokenizer_ref")
    TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    ADD_SPECIAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_REF_FIELD_NUMBER: _ClassVar[int]
    tokenizer: str
    add_special_tokens: bool
    tokenizer_ref: int
    def __init__(self, tokenizer: _Optional[str] = ..., add_special_tokens: _Optional[bool] = ..., tokenizer_ref: _Optional[int] = ...) -> None: ...

class RenderTemplate(_message.Message):
    __slots__ = ("literals",)
    LITERALS_FIELD_NUMBER: _ClassVar[int]
    literals: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, literals: _Optional[_Iterable[str]] = ...) -> None: ...

class LlmCall(_message.Message):
    __slots__ = ("kind", "provider_ref", "provider", "model", "max_tokens", "has_temperature", "temperature", "response_format_json", "options_json", "output_model_ref", "include_finish_reason")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        PROMPT: _ClassVar[LlmCall.Kind]
        EMBED: _ClassVar[LlmCall.Kind]
    PROMPT: LlmCall.Kind
    EMBED: LlmCall.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_REF_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    HAS_TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FORMAT_JSON_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_MODEL_REF_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    kind: LlmCall.Kind
    provider_ref: int
    provider: str
    model: str
    max_tokens: int
    has_temperature: bool
    temperature: float
    response_format_json: str
    options_json: str
    output_model_ref: int
    include_finish_reason: bool
    def __init__(self, kind: _Optional[_Union[LlmCall.Kind, str]] = ..., provider_ref: _Optional[int] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., max_tokens: _Optional[int] = ..., has_temperature: _Optional[bool] = ..., temperature: _Optional[float] = ..., response_format_json: _Optional[str] = ..., options_json: _Optional[str] = ..., output_model_ref: _Optional[int] = ..., include_finish_reason: _Optional[bool] = ...) -> None: ...

class Literal(_message.Message):
    __slots__ = ("null_value", "bool_value", "int_value", "float_value", "str_value", "float_list", "type")
    NULL_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    STR_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_LIST_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    null_value: bool
    bool_value: bool
    int_value: int
    float_value: float
    str_value: str
    float_list: FloatList
    type: DataType
    def __init__(self, null_value: _Optional[bool] = ..., bool_value: _Optional[bool] = ..., int_value: _Optional[int] = ..., float_value: _Optional[float] = ..., str_value: _Optional[str] = ..., float_list: _Optional[_Union[FloatList, _Mapping]] = ..., type: _Optional[_Union[DataType, _Mapping]] = ...) -> None: ...

class FloatList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class Expression(_message.Message):
    __slots__ = ("function", "operands", "options", "op")
    class Operand(_message.Message):
        __slots__ = ("input", "literal")
        INPUT_FIELD_NUMBER: _ClassVar[int]
        LITERAL_FIELD_NUMBER: _ClassVar[int]
        input: int
        literal: Literal
        def __init__(self, input: _Optional[int] = ..., literal: _Optional[_Union[Literal, _Mapping]] = ...) -> None: ...
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    OPERANDS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    function: str
    operands: _containers.RepeatedCompositeFieldContainer[Expression.Operand]
    options: _containers.RepeatedCompositeFieldContainer[Literal]
    op: str
    def __init__(self, function: _Optional[str] = ..., operands: _Optional[_Iterable[_Union[Expression.Operand, _Mapping]]] = ..., options: _Optional[_Iterable[_Union[Literal, _Mapping]]] = ..., op: _Optional[str] = ...) -> None: ...

class Filter(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CacheSpec(_message.Message):
    __slots__ = ("cache_ref",)
    CACHE_REF_FIELD_NUMBER: _ClassVar[int]
    cache_ref: int
    def __init__(self, cache_ref: _Optional[int] = ...) -> None: ...

class Node(_message.Message):
    __slots__ = ("id", "level", "name", "type", "inputs", "fingerprint", "op_fingerprint", "cache", "level_input", "python_udf", "as_list", "level_attribute", "tokenize", "render_template", "llm_call", "expression", "filter")
    ID_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    OP_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    LEVEL_INPUT_FIELD_NUMBER: _ClassVar[int]
    PYTHON_UDF_FIELD_NUMBER: _ClassVar[int]
    AS_LIST_FIELD_NUMBER: _ClassVar[int]
    LEVEL_ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    TOKENIZE_FIELD_NUMBER: _ClassVar[int]
    RENDER_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    LLM_CALL_FIELD_NUMBER: _ClassVar[int]
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    id: int
    level: int
    name: str
    type: DataType
    inputs: _containers.RepeatedScalarFieldContainer[int]
    fingerprint: str
    op_fingerprint: str
    cache: CacheSpec
    level_input: LevelInput
    python_udf: PythonUdf
    as_list: AsList
    level_attribute: LevelAttribute
    tokenize: Tokenize
    render_template: RenderTemplate
    llm_call: LlmCall
    expression: Expression
    filter: Filter
    def __init__(self, id: _Optional[int] = ..., level: _Optional[int] = ..., name: _Optional[str] = ..., type: _Optional[_Union[DataType, _Mapping]] = ..., inputs: _Optional[_Iterable[int]] = ..., fingerprint: _Optional[str] = ..., op_fingerprint: _Optional[str] = ..., cache: _Optional[_Union[CacheSpec, _Mapping]] = ..., level_input: _Optional[_Union[LevelInput, _Mapping]] = ..., python_udf: _Optional[_Union[PythonUdf, _Mapping]] = ..., as_list: _Optional[_Union[AsList, _Mapping]] = ..., level_attribute: _Optional[_Union[LevelAttribute, _Mapping]] = ..., tokenize: _Optional[_Union[Tokenize, _Mapping]] = ..., render_template: _Optional[_Union[RenderTemplate, _Mapping]] = ..., llm_call: _Optional[_Union[LlmCall, _Mapping]] = ..., expression: _Optional[_Union[Expression, _Mapping]] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ...) -> None: ...

class Explode(_message.Message):
    __slots__ = ("one_to_one",)
    ONE_TO_ONE_FIELD_NUMBER: _ClassVar[int]
    one_to_one: bool
    def __init__(self, one_to_one: _Optional[bool] = ...) -> None: ...

class ChunkText(_message.Message):
    __slots__ = ("max_chars", "overlap", "max_tokens", "overlap_tokens", "tokenizer", "chunk_index_node", "start_offset_node", "end_offset_node", "tokenizer_ref")
    MAX_CHARS_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_NODE_FIELD_NUMBER: _ClassVar[int]
    START_OFFSET_NODE_FIELD_NUMBER: _ClassVar[int]
    END_OFFSET_NODE_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_REF_FIELD_NUMBER: _ClassVar[int]
    max_chars: int
    overlap: int
    max_tokens: int
    overlap_tokens: int
    tokenizer: str
    chunk_index_node: int
    start_offset_node: int
    end_offset_node: int
    tokenizer_ref: int
    def __init__(self, max_chars: _Optional[int] = ..., overlap: _Optional[int] = ..., max_tokens: _Optional[int] = ..., overlap_tokens: _Optional[int] = ..., tokenizer: _Optional[str] = ..., chunk_index_node: _Optional[int] = ..., start_offset_node: _Optional[int] = ..., end_offset_node: _Optional[int] = ..., tokenizer_ref: _Optional[int] = ...) -> None: ...

class Level(_message.Message):
    __slots__ = ("id", "parent", "flow", "source_node", "element_node", "explode", "chunk_text", "fingerprint", "input_limit", "limit")
    ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    FLOW_FIELD_NUMBER: _ClassVar[int]
    SOURCE_NODE_FIELD_NUMBER: _ClassVar[int]
    ELEMENT_NODE_FIELD_NUMBER: _ClassVar[int]
    EXPLODE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_TEXT_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    INPUT_LIMIT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    id: int
    parent: int
    flow: str
    source_node: int
    element_node: int
    explode: Explode
    chunk_text: ChunkText
    fingerprint: str
    input_limit: int
    limit: int
    def __init__(self, id: _Optional[int] = ..., parent: _Optional[int] = ..., flow: _Optional[str] = ..., source_node: _Optional[int] = ..., element_node: _Optional[int] = ..., explode: _Optional[_Union[Explode, _Mapping]] = ..., chunk_text: _Optional[_Union[ChunkText, _Mapping]] = ..., fingerprint: _Optional[str] = ..., input_limit: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class Output(_message.Message):
    __slots__ = ("level", "nodes", "names")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    level: int
    nodes: _containers.RepeatedScalarFieldContainer[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, level: _Optional[int] = ..., nodes: _Optional[_Iterable[int]] = ..., names: _Optional[_Iterable[str]] = ...) -> None: ...

class Plan(_message.Message):
    __slots__ = ("ir_version", "levels", "nodes", "output_level", "output_nodes", "root_field", "root_type", "output_names", "objects", "current_field", "fingerprint", "kind", "outputs")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        FLOW: _ClassVar[Plan.Kind]
        SINK_FLOW: _ClassVar[Plan.Kind]
        MULTISINK: _ClassVar[Plan.Kind]
    FLOW: Plan.Kind
    SINK_FLOW: Plan.Kind
    MULTISINK: Plan.Kind
    IR_VERSION_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_LEVEL_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NODES_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_FIELD_NUMBER: _ClassVar[int]
    ROOT_TYPE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAMES_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    ir_version: int
    levels: _containers.RepeatedCompositeFieldContainer[Level]
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    output_level: int
    output_nodes: _containers.RepeatedScalarFieldContainer[int]
    root_field: str
    root_type: DataType
    output_names: _containers.RepeatedScalarFieldContainer[str]
    objects: _containers.RepeatedCompositeFieldContainer[PythonObject]
    current_field: str
    fingerprint: str
    kind: Plan.Kind
    outputs: _containers.RepeatedCompositeFieldContainer[Output]
    def __init__(self, ir_version: _Optional[int] = ..., levels: _Optional[_Iterable[_Union[Level, _Mapping]]] = ..., nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ..., output_level: _Optional[int] = ..., output_nodes: _Optional[_Iterable[int]] = ..., root_field: _Optional[str] = ..., root_type: _Optional[_Union[DataType, _Mapping]] = ..., output_names: _Optional[_Iterable[str]] = ..., objects: _Optional[_Iterable[_Union[PythonObject, _Mapping]]] = ..., current_field: _Optional[str] = ..., fingerprint: _Optional[str] = ..., kind: _Optional[_Union[Plan.Kind, str]] = ..., outputs: _Optional[_Iterable[_Union[Output, _Mapping]]] = ...) -> None: ...
