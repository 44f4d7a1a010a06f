'use client';
// Choosing a photograph (file input or drag-and-drop), uploading it through /search/upload, then running the
// search form with the upload token in the address (?upload=upl_...), so filters can change without
// uploading again.
import { useId, useState, type DragEvent } from 'react';

type UploadState = { kind: 'idle' } | { kind: 'uploading'; name: string } | { kind: 'refused'; code: string; message: string };

interface UploadAnswer {
  ok: boolean;
  uploadToken?: string;
  code?: string;
  message?: string;
  signIn?: string;
}

export function PhotoPicker({ formId }: { formId: string }) {
  const inputId = useId();
  const [state, setState] = useState<UploadState>({ kind: 'idle' });
  const [dragging, setDragging] = useState(false);

  async function upload(file: File) {
    setState({ kind: 'uploading', name: file.name });
    let answer: UploadAnswer;
    try {
      const response = await fetch('/search/upload', {
        method: 'POST',
        headers: { 'content-type': file.type || 'application/octet-stream' },
        body: file,
      });
      answer = (await response.json()) as UploadAnswer;
    } catch {
      setState({ kind: 'refused', code: 'NETWORK_ERROR', message: 'The photograph could not be sent. Check the connection and try again.' });
      return;
    }
    if (answer.signIn) {
      window.location.assign(answer.signIn);
      return;
    }
    if (!answer.ok || !answer.uploadToken) {
      setState({ kind: 'refused', code: answer.code ?? 'UNKNOWN', message: answer.message ?? 'The photograph could not be uploaded.' });
      return;
    }
    const form = document.getElementById(formId);
    const params = new URLSearchParams();
    if (form instanceof HTMLFormElement) {
      for (const [name, value] of new FormData(form)) {
        if (name !== 'imageId' && name !== 'upload' && typeof value === 'string') params.append(name, value);
      }
    }
    params.set('upload', answer.uploadToken);
    window.location.assign(`/search?${params}`);
  }

  function onDrop(event: DragEvent<HTMLDivElement>) {
    event.preventDefault();
    setDragging(false);
    const file = event.dataTransfer.files[0];
    if (file) void upload(file);
  }

  return (
    <div
      className={`drop-zone${dragging ? ' drop-zone-active' : ''}`}
      role="group"
      aria-label="Photograph drop zone"
      data-testid="photo-drop-zone"
      onDragOver={(event) => {
        event.preventDefault();
        setDragging(true);
      }}
      onDragLeave={() => setDragging(false)}
      onDrop={onDrop}
    >
      <label htmlFor={inputId}>Photograph</label>
      <input
        id={inputId}
        type="file"
        accept="image/*"
        aria-describedby={`${inputId}-hint`}
        disabled={state.kind === 'uploading'}
        onChange={(event) => {
          const file = event.currentTarget.files?.[0];
          if (file) void upload(file);
        }}
      />
      <p id={`${inputId}-hint`} className="hint">
        Choose a fundus photograph or drop it here (JPEG, PNG, TIFF, WebP, GIF or AVIF). Nothing is stored until you
        save it as a case: it is kept for 10 minutes to search with.
      </p>
      {state.kind === 'uploading' && (
        <p role="status" className="upload-status">
          Analysing {state.name}…
        </p>
      )}
      {state.kind === 'refused' && (
        <div className="alert" role="alert" data-error-code={state.code}>
          <p className="alert-title">The photograph was not accepted</p>
          <p>{state.message}</p>
        </div>
      )}
    </div>
  );
}
