import { cloneElement, type ReactElement, type ReactNode, useId } from 'react';
import type { Loaded } from './use-load.ts';

/** Loading and error states, the same on every screen. */
export function Status<T>({ load, children }: { load: Loaded<T>; children: (d: T) => ReactNode }) {
  if (load.error) {
    return (
      <div role="alert" className="error">
        {load.error}{' '}
        <button type="button" onClick={load.reload}>
          Try again
        </button>
      </div>
    );
  }
  if (load.loading && load.data === undefined) {
    return (
      <p role="status" className="loading">
        Loading…
      </p>
    );
  }
  return load.data === undefined ? null : children(load.data);
}

export function ErrorText({ error }: { error: string | undefined }) {
  return error ? (
    <p role="alert" className="error">
      {error}
    </p>
  ) : null;
}

/** A labelled form control: the label names the control exactly (for=id), whatever the control shows. */
export function Field({ label, children }: { label: string; children: ReactElement<{ id?: string }> }) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      {cloneElement(children, { id })}
    </div>
  );
}
