import type { UFile } from './upload-model.ts';

const LABEL: Record<string, string> = {
  ready: 'waiting',
  skipped: 'skipped',
  sending: 'sending',
  stored: 'stored',
  held: 'held',
  refused: 'refused',
  failed: 'failed',
};

/** The per-file table of the upload: path, progress, result (stored, held, refused, …) and the reason in words. */
export function FileTable({ files }: { files: UFile[] }) {
  return (
    <div className="scroll">
      <table aria-label="Files">
        <thead>
          <tr>
            <th scope="col">File</th>
            <th scope="col">Progress</th>
            <th scope="col">Result</th>
            <th scope="col">Reason</th>
          </tr>
        </thead>
        <tbody>
          {files.map((f) => (
            <tr key={f.id} data-status={f.status}>
              <td className="mono">{f.path}</td>
              <td>
                <progress aria-label={`Progress of ${f.path}`} max={1} value={f.progress} />
              </td>
              <td
                className={
                  f.status === 'stored' ? 'ok' : f.status === 'refused' || f.status === 'failed' ? 'bad' : 'warn'
                }
              >
                {LABEL[f.status]}
              </td>
              <td>
                {f.reason ?? ''}
                {f.corrections.length > 0 && ' (tags corrected)'}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
