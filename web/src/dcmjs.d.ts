// dcmjs ships no type declarations; the parts we use are typed at their call sites (src/dicom/).
declare module 'dcmjs';
