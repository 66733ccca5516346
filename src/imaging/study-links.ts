/**
 * The study ↔ patient link changed: an in-process signal from the writers of links (FHIR ImagingStudy writes, STOW-RS
 * linking, C-STORE reconciliation and deletions) to the readers that cache them (the DICOMweb study index).
 *
 * A second signal, {@link studyContentChanged}, says a study's instances changed (STOW-RS stored instances, the change
 * feed indexed or lost a study): readers caching Orthanc's answers (the DICOMweb series cache) listen to it. Every
 * link change is also a content change for them.
 *
 * Publish only AFTER the transaction that changed the link has committed: a reader that re-reads before the commit
 * would otherwise cache the old link again.
 */
type Listener = (studyUid?: string) => void;

const listeners = new Set<Listener>();
const contentListeners = new Set<Listener>();

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
  for (const l of contentListeners) l(studyUid);
}

/** Subscribes to content changes (instances stored or removed) and link changes; returns the unsubscribe function. */
export function onStudyContentChanged(listener: Listener): () => void {
  contentListeners.add(listener);
  return () => {
    contentListeners.delete(listener);
  };
}

/** Announces that `studyUid`'s instances changed (any study's when no UID is known). */
export function studyContentChanged(studyUid?: string): void {
  for (const l of contentListeners) l(studyUid);
}
