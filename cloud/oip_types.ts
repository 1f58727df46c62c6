/**
 * Open Inference Protocol (KServe v2 REST) messages, JSON form, as served by Triton, KServe and the reference
 * server. See the protocol's "HTTP/REST" section: https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/
 *
 * @module
 */

/** Tensor element types of the protocol. */
export type OipDatatype =
  | "BOOL"
  | "UINT8"
  | "UINT16"
  | "UINT32"
  | "UINT64"
  | "INT8"
  | "INT16"
  | "INT32"
  | "INT64"
  | "FP16"
  | "FP32"
  | "FP64"
  | "BYTES";

/** A tensor in a request or a response. `data` is row-major, flat (nested arrays are also allowed by the protocol). */
export interface OipTensor {
  name: string;
  shape: number[];
  datatype: OipDatatype;
  data: number[];
  parameters?: Record<string, unknown>;
}

/** `POST /v2/models/{name}[/versions/{version}]/infer` body. */
export interface OipInferRequest {
  /** Echoed in the reply. */
  id?: string;
  inputs: OipTensor[];
  /** Outputs wanted (all when absent). */
  outputs?: { name: string; parameters?: Record<string, unknown> }[];
  parameters?: Record<string, unknown>;
}

/** The reply to an infer request. */
export interface OipInferResponse {
  model_name: string;
  model_version?: string;
  id?: string;
  parameters?: Record<string, unknown>;
  outputs: OipTensor[];
}

/** A tensor's name, type and shape (-1: dynamic), in model metadata. */
export interface OipTensorMetadata {
  name: string;
  datatype: OipDatatype | string;
  shape: number[];
}

/** `GET /v2/models/{name}[/versions/{version}]` reply. */
export interface OipModelMetadata {
  name: string;
  versions?: string[];
  platform: string;
  inputs: OipTensorMetadata[];
  outputs: OipTensorMetadata[];
}

/** `GET /v2` reply. */
export interface OipServerMetadata {
  name: string;
  version: string;
  extensions: string[];
}

/** Error body of any non-2xx reply. */
export interface OipError {
  error: string;
}
