import { onOtherMajors } from '../support/versions.js';

onOtherMajors([14, 15]);
