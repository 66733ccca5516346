/**
 * The study ↔ patient link changed: an in-process signal from the writers of links (FHIR ImagingStudy writes, STOW-RS
 * linking, C-STORE reconciliation and deletions) to the readers that cache them (the DICOMweb study index).
 *
 * Publish only AFTER the transaction that changed the link has committed: a reader that re-reads before the commit
 * would otherwise cache the old link again.
 */
type Listener = (studyUid?: string) => void;

const listeners = new Set<Listener>();

/** Subscribes to link changes; returns the unsubscribe function. */
export function onStudyLinksChanged(listener: Listener): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}

/** Announces a committed change of `studyUid`'s links, or of any study's when no UID is known. */
export function studyLinksChanged(studyUid?: string): void {
  for (const l of listeners) l(studyUid);
}
