import { onOtherMajors } from '../support/versions.js';

onOtherMajors([16, 17, 18]);
