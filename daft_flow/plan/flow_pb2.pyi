from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DataType(_message.Message):
    __slots__ = ("kind", "element", "dimension")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ELEMENT_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    kind: str
    element: DataType
    dimension: int
    def __init__(self, kind: _Optional[str] = ..., element: _Optional[_Union[DataType, _Mapping]] = ..., dimension: _Optional[int] = ...) -> None: ...

class PythonCallable(_message.Message):
    __slots__ = ("module", "qualname", "ref", "pickled")
    MODULE_FIELD_NUMBER: _ClassVar[int]
    QUALNAME_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    PICKLED_FIELD_NUMBER: _ClassVar[int]
    module: str
    qualname: str
    ref: int
    pickled: bytes
    def __init__(self, module: _Optional[str] = ..., qualname: _Optional[str] = ..., ref: _Optional[int] = ..., pickled: _Optional[bytes] = ...) -> None: ...

class PythonUdf(_message.Message):
    __slots__ = ("fn", "mode", "max_in_flight", "batch_size", "batch_arg_kind", "builtin", "builtin_detail")
    class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ROW: _ClassVar[PythonUdf.Mode]
        BATCH: _ClassVar[PythonUdf.Mode]
        ASYNC: _ClassVar[PythonUdf.Mode]
    ROW: PythonUdf.Mode
    BATCH: PythonUdf.Mode
    ASYNC: PythonUdf.Mode
    FN_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    BATCH_ARG_KIND_FIELD_NUMBER: _ClassVar[int]
    BUILTIN_FIELD_NUMBER: _ClassVar[int]
    BUILTIN_DETAIL_FIELD_NUMBER: _ClassVar[int]
    fn: PythonCallable
    mode: PythonUdf.Mode
    max_in_flight: int
    batch_size: int
    batch_arg_kind: str
    builtin: str
    builtin_detail: str
    def __init__(self, fn: _Optional[_Union[PythonCallable, _Mapping]] = ..., mode: _Optional[_Union[PythonUdf.Mode, str]] = ..., max_in_flight: _Optional[int] = ..., batch_size: _Optional[int] = ..., batch_arg_kind: _Optional[str] = ..., builtin: _Optional[str] = ..., builtin_detail: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("tokenizer", "add_special_tokens")
    TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    ADD_SPECIAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokenizer: str
    add_special_tokens: bool
    def __init__(self, tokenizer: _Optional[str] = ..., add_special_tokens: _Optional[bool] = ...) -> None: ...

class ChunkText(_message.Message):
    __slots__ = ("max_chars", "overlap", "max_tokens", "overlap_tokens", "tokenizer", "chunk_index_node", "start_offset_node", "end_offset_node")
    MAX_CHARS_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_NODE_FIELD_NUMBER: _ClassVar[int]
    START_OFFSET_NODE_FIELD_NUMBER: _ClassVar[int]
    END_OFFSET_NODE_FIELD_NUMBER: _ClassVar[int]
    max_chars: int
    overlap: int
    max_tokens: int
    overlap_tokens: int
    tokenizer: str
    chunk_index_node: int
    start_offset_node: int
    end_offset_node: int
    def __init__(self, max_chars: _Optional[int] = ..., overlap: _Optional[int] = ..., max_tokens: _Optional[int] = ..., overlap_tokens: _Optional[int] = ..., tokenizer: _Optional[str] = ..., chunk_index_node: _Optional[int] = ..., start_offset_node: _Optional[int] = ..., end_offset_node: _Optional[int] = ...) -> None: ...

class RenderTemplate(_message.Message):
    __slots__ = ("literals",)
    LITERALS_FIELD_NUMBER: _ClassVar[int]
    literals: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, literals: _Optional[_Iterable[str]] = ...) -> None: ...

class LlmCall(_message.Message):
    __slots__ = ("kind", "provider_ref", "provider", "model", "max_tokens", "has_temperature", "temperature", "response_format_json", "options_json", "spec_ref")
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
    SPEC_REF_FIELD_NUMBER: _ClassVar[int]
    kind: LlmCall.Kind
    provider_ref: int
    provider: str
    model: str
    max_tokens: int
    has_temperature: bool
    temperature: float
    response_format_json: str
    options_json: str
    spec_ref: int
    def __init__(self, kind: _Optional[_Union[LlmCall.Kind, str]] = ..., provider_ref: _Optional[int] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., max_tokens: _Optional[int] = ..., has_temperature: _Optional[bool] = ..., temperature: _Optional[float] = ..., response_format_json: _Optional[str] = ..., options_json: _Optional[str] = ..., spec_ref: _Optional[int] = ...) -> None: ...

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

class Node(_message.Message):
    __slots__ = ("id", "level", "name", "type", "inputs", "level_input", "python_udf", "as_list", "level_attribute", "tokenize", "render_template", "llm_call", "expression", "filter")
    ID_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
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
    level_input: LevelInput
    python_udf: PythonUdf
    as_list: AsList
    level_attribute: LevelAttribute
    tokenize: Tokenize
    render_template: RenderTemplate
    llm_call: LlmCall
    expression: Expression
    filter: Filter
    def __init__(self, id: _Optional[int] = ..., level: _Optional[int] = ..., name: _Optional[str] = ..., type: _Optional[_Union[DataType, _Mapping]] = ..., inputs: _Optional[_Iterable[int]] = ..., level_input: _Optional[_Union[LevelInput, _Mapping]] = ..., python_udf: _Optional[_Union[PythonUdf, _Mapping]] = ..., as_list: _Optional[_Union[AsList, _Mapping]] = ..., level_attribute: _Optional[_Union[LevelAttribute, _Mapping]] = ..., tokenize: _Optional[_Union[Tokenize, _Mapping]] = ..., render_template: _Optional[_Union[RenderTemplate, _Mapping]] = ..., llm_call: _Optional[_Union[LlmCall, _Mapping]] = ..., expression: _Optional[_Union[Expression, _Mapping]] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ...) -> None: ...

class Level(_message.Message):
    __slots__ = ("id", "parent", "flow", "source_node", "one_to_one", "element_node", "chunk_text", "input_limit", "limit")
    ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    FLOW_FIELD_NUMBER: _ClassVar[int]
    SOURCE_NODE_FIELD_NUMBER: _ClassVar[int]
    ONE_TO_ONE_FIELD_NUMBER: _ClassVar[int]
    ELEMENT_NODE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_TEXT_FIELD_NUMBER: _ClassVar[int]
    INPUT_LIMIT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    id: int
    parent: int
    flow: str
    source_node: int
    one_to_one: bool
    element_node: int
    chunk_text: ChunkText
    input_limit: int
    limit: int
    def __init__(self, id: _Optional[int] = ..., parent: _Optional[int] = ..., flow: _Optional[str] = ..., source_node: _Optional[int] = ..., one_to_one: _Optional[bool] = ..., element_node: _Optional[int] = ..., chunk_text: _Optional[_Union[ChunkText, _Mapping]] = ..., input_limit: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class Plan(_message.Message):
    __slots__ = ("ir_version", "levels", "nodes", "output_level", "output_nodes", "root_field", "root_type", "output_names")
    IR_VERSION_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_LEVEL_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NODES_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_FIELD_NUMBER: _ClassVar[int]
    ROOT_TYPE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAMES_FIELD_NUMBER: _ClassVar[int]
    ir_version: int
    levels: _containers.RepeatedCompositeFieldContainer[Level]
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    output_level: int
    output_nodes: _containers.RepeatedScalarFieldContainer[int]
    root_field: str
    root_type: DataType
    output_names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ir_version: _Optional[int] = ..., levels: _Optional[_Iterable[_Union[Level, _Mapping]]] = ..., nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ..., output_level: _Optional[int] = ..., output_nodes: _Optional[_Iterable[int]] = ..., root_field: _Optional[str] = ..., root_type: _Optional[_Union[DataType, _Mapping]] = ..., output_names: _Optional[_Iterable[str]] = ...) -> None: ...
