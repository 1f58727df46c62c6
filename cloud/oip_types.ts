/**
 * Open Inference Protocol (KServe v2 REST) messages, as served by Triton, KServe and the reference server.
 *
 * @module
 */

/** A tensor in a request or response, JSON form. */
export interface OipTensor {
  name: string;
  shape: number[];
  datatype: "FP32" | "FP64" | "INT64" | "INT32" | "BYTES" | "BOOL" | string;
  data: number[];
  parameters?: Record<string, unknown>;
}

/** `POST /v2/models/{name}/infer` body. */
export interface OipInferRequest {
  id?: string;
  inputs: OipTensor[];
  outputs?: { name: string }[];
  parameters?: Record<string, unknown>;
}

/** Its reply. */
export interface OipInferResponse {
  model_name: string;
  model_version?: string;
  id?: string;
  outputs: OipTensor[];
}

/** `GET /v2/models/{name}` reply. */
export interface OipModelMetadata {
  name: string;
  versions?: string[];
  platform: string;
  inputs: { name: string; datatype: string; shape: number[] }[];
  outputs: { name: string; datatype: string; shape: number[] }[];
}

/** Error body. */
export interface OipError {
  error: string;
}
