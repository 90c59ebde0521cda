/* Argument helpers shared by the C extensions (sfu/_fanout_c/, sfu/_receive_c/). */
#ifndef SFU_NATIVE_ARGS_H
#define SFU_NATIVE_ARGS_H

#include <Python.h>

/* The address an int names (from cffi: a libsrtp function, an srtp_t); NULL with an
 * exception set for anything else or a null pointer. */
static inline void *
as_pointer(PyObject *obj, const char *name)
{
    void *pointer;

    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int", name);
        return NULL;
    }
    pointer = PyLong_AsVoidPtr(obj);
    if (pointer == NULL && !PyErr_Occurred())
        PyErr_Format(PyExc_ValueError, "%s is a null pointer", name);
    return pointer;
}

/* A libsrtp function and the session it runs on, both given as addresses. */
static inline int
srtp_arguments(PyObject *function, const char *function_name, PyObject *session,
               void **function_out, void **session_out)
{
    *function_out = as_pointer(function, function_name);
    if (*function_out == NULL)
        return -1;
    *session_out = as_pointer(session, "session");
    return *session_out == NULL ? -1 : 0;
}

#endif
