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
    __slots__ = ("fn", "mode", "max_in_flight", "batch_size", "batch_arg_kind")
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
    fn: PythonCallable
    mode: PythonUdf.Mode
    max_in_flight: int
    batch_size: int
    batch_arg_kind: str
    def __init__(self, fn: _Optional[_Union[PythonCallable, _Mapping]] = ..., mode: _Optional[_Union[PythonUdf.Mode, str]] = ..., max_in_flight: _Optional[int] = ..., batch_size: _Optional[int] = ..., batch_arg_kind: _Optional[str] = ...) -> None: ...

class LevelInput(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AsList(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Node(_message.Message):
    __slots__ = ("id", "level", "name", "type", "inputs", "level_input", "python_udf", "as_list")
    ID_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    LEVEL_INPUT_FIELD_NUMBER: _ClassVar[int]
    PYTHON_UDF_FIELD_NUMBER: _ClassVar[int]
    AS_LIST_FIELD_NUMBER: _ClassVar[int]
    id: int
    level: int
    name: str
    type: DataType
    inputs: _containers.RepeatedScalarFieldContainer[int]
    level_input: LevelInput
    python_udf: PythonUdf
    as_list: AsList
    def __init__(self, id: _Optional[int] = ..., level: _Optional[int] = ..., name: _Optional[str] = ..., type: _Optional[_Union[DataType, _Mapping]] = ..., inputs: _Optional[_Iterable[int]] = ..., level_input: _Optional[_Union[LevelInput, _Mapping]] = ..., python_udf: _Optional[_Union[PythonUdf, _Mapping]] = ..., as_list: _Optional[_Union[AsList, _Mapping]] = ...) -> None: ...

class Level(_message.Message):
    __slots__ = ("id", "parent", "flow", "source_node", "one_to_one", "element_node")
    ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    FLOW_FIELD_NUMBER: _ClassVar[int]
    SOURCE_NODE_FIELD_NUMBER: _ClassVar[int]
    ONE_TO_ONE_FIELD_NUMBER: _ClassVar[int]
    ELEMENT_NODE_FIELD_NUMBER: _ClassVar[int]
    id: int
    parent: int
    flow: str
    source_node: int
    one_to_one: bool
    element_node: int
    def __init__(self, id: _Optional[int] = ..., parent: _Optional[int] = ..., flow: _Optional[str] = ..., source_node: _Optional[int] = ..., one_to_one: _Optional[bool] = ..., element_node: _Optional[int] = ...) -> None: ...

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
